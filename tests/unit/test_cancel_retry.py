"""A cancel the operator decided on (suspend, or resubmitting a stalled job) is retried until it is made."""

from __future__ import annotations

from test_controller import RESOURCE, T0, TENANCY, FakeVertex, runtime_with, spec, submit_action

from batch_inference_operator.adapters.errors import AdapterError
from batch_inference_operator.controller import executor
from batch_inference_operator.core.actions import CancelJob
from batch_inference_operator.core.admission import Queue
from batch_inference_operator.core.decide import decide
from batch_inference_operator.core.vertex_jobs import ObservedJob


async def test_a_suspend_whose_cancel_failed_cancels_on_a_later_turn() -> None:
    """Before, the failed cancel left `cancelRequested: true` in status and no later turn cancelled: the
    resource read Suspended while its job ran on to the end. The intent stays recorded, and the cancel is
    sent again while the job still runs."""
    vertex = FakeVertex()
    s, decision = submit_action()
    runtime = runtime_with(vertex, decision)
    created = await executor.act(runtime, decision, s, RESOURCE, TENANCY, Queue(), "")
    name = created.status.attempts[0].job_name
    assert name is not None
    running = ObservedJob(name=name, state="JOB_STATE_RUNNING", create_time=T0)
    vertex.jobs[name] = (running, vertex.jobs[name][1])
    suspended = spec(suspend=True)

    vertex.fail_next["cancel"] = AdapterError("cancel: Vertex AI answered 503 UNAVAILABLE", retryable=True, code=503)
    first = decide(suspended, created.status, running, RESOURCE, TENANCY, T0)
    assert isinstance(first.actions[0], CancelJob)
    failed = await executor.act(runtime, first, suspended, RESOURCE, TENANCY, Queue(), "")
    assert [e.reason for e in failed.events if e.type == "Warning"] == ["Retrying"]
    assert failed.status.phase == "Suspended" and failed.status.attempts[0].cancel_requested

    runtime.backoff.clear()  # as if the backoff had passed
    again = decide(suspended, failed.status, running, RESOURCE, TENANCY, T0)
    assert [type(a) for a in again.actions] == [CancelJob], "the cancel is asked for again"
    done = await executor.act(runtime, again, suspended, RESOURCE, TENANCY, Queue(), "")
    assert vertex.calls.count("cancel") == 2 and vertex.jobs[name][0].state == "JOB_STATE_CANCELLING"
    assert done.status.attempts[0].cancel_requested
