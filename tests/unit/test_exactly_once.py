"""The exactly-once rules of core/exactly_once.py as the executor applies them, on the decision's clock."""

from __future__ import annotations

import datetime

from test_controller import RESOURCE, SETTLE, T0, TENANCY, FakeVertex, runtime_with, submit_action

from batch_inference_operator import api
from batch_inference_operator.adapters.errors import AdapterError
from batch_inference_operator.controller import executor
from batch_inference_operator.controller.runtime import Marker
from batch_inference_operator.core.actions import Decision
from batch_inference_operator.core.admission import Queue
from batch_inference_operator.core.decide import decide
from batch_inference_operator.core.exactly_once import release_wait

SECOND = datetime.timedelta(seconds=1)


async def test_a_create_sent_long_after_its_marker_is_never_followed_by_another_within_its_settle_window() -> None:
    """A refused lookup keeps the marker usable, so its create may go out long after the marker was
    written; if that create then times out, it may land up to a settle window after it was sent. The
    window used to run from the marker, so a second create followed 20 s after the first here."""
    vertex = FakeVertex()
    s, decision = submit_action()
    runtime = runtime_with(vertex, decision)

    async def turn(status: api.BatchInferenceJobStatus, at: datetime.datetime) -> Decision:
        runtime.backoff.clear()
        runtime.clock = lambda: at
        result = await executor.act(
            runtime, decide(s, status, None, RESOURCE, TENANCY, at), s, RESOURCE, TENANCY, Queue(), ""
        )
        marker = result.status.attempts[0].submitting
        if marker is not None and marker != status.attempts[0].submitting:
            runtime.fresh[RESOURCE.uid] = Marker(marker)  # as the lifecycle notes a marker it has written
        return result

    vertex.fail_next["list"] = AdapterError("list: Vertex AI answered 503 UNAVAILABLE", retryable=True, code=503)
    refused = await executor.act(runtime, decision, s, RESOURCE, TENANCY, Queue(), "")
    assert "create" not in vertex.calls

    status, sent = refused.status, T0 + 140 * SECOND
    vertex.fail_next["create"] = AdapterError("create: Vertex AI did not answer in time", retryable=True)
    for moment in (sent, sent, sent + 20 * SECOND, sent + 20 * SECOND, sent + SETTLE - SECOND):
        status = (await turn(status, moment)).status
    assert vertex.calls.count("create") == 1, "no second create while the first may still land"
    for moment in (sent + SETTLE + SECOND, sent + SETTLE + SECOND):
        status = (await turn(status, moment)).status
    assert vertex.calls.count("create") == 2 and status.attempts[0].job_name in vertex.jobs


def test_a_deletion_waits_only_while_a_create_may_still_land() -> None:
    assert release_wait(T0, False, T0 + SECOND, SETTLE) == T0 + SETTLE
    assert release_wait(T0, True, T0 + SECOND, SETTLE) is None, "this process sent nothing for its marker"
    assert release_wait(T0, False, T0 + SETTLE, SETTLE) is None, "the settle window has passed"
    assert release_wait(None, False, T0, SETTLE) is None, "no marker: no create in flight"
