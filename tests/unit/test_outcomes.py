"""Honest outcomes and every Vertex JobState: a failure reads as failed, no state silently reads as Running,
and a corrupt output never stops a resource."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from test_reconcile import DEFAULTS, RESOURCE, T0, condition, decide, observed, spec, submitted

from batch_inference_operator import api
from batch_inference_operator.core.outcomes import row_error
from batch_inference_operator.core.record import record_failure, record_scan
from batch_inference_operator.core.usage import scan

END = T0 + datetime.timedelta(minutes=5)
OUT = "gs://out-bucket/results/prediction-model-x"
BAD_ROLE = (
    'Bad Request: {"error": {"code": 400, "message": "Please use a valid role: user, model.", '
    '"status": "INVALID_ARGUMENT"}}'
)


def finished_with(rows: api.RowCounts, errors: list[api.RowError], **kw: Any) -> Any:
    """A one-attempt job that SUCCEEDED on Vertex, its output read with these rows."""
    once = spec(resume={"maxAttempts": 1})
    stats = api.CompletionStats(successful=rows.succeeded, failed=rows.failed_permanent + rows.failed_transient)
    ended = decide(
        once,
        submitted(once),
        observed("JOB_STATE_SUCCEEDED", start_time=T0, end_time=END, stats=stats, output_location=OUT),
        RESOURCE,
        DEFAULTS,
        END,
    )
    usage = api.Usage(requests=rows.succeeded + rows.failed_permanent, succeeded=rows.succeeded)
    read = record_scan(ended.status, 1, usage, rows, errors)
    return decide(once, read, None, RESOURCE, DEFAULTS, END)


def test_a_job_in_which_every_row_failed_is_failed_everywhere() -> None:
    errors = [row_error(BAD_ROLE, line) for line in (1, 2)]
    done = finished_with(api.RowCounts(failed_permanent=2), errors)
    s = done.status
    assert s.phase == "Failed"
    assert condition(s, "Failed") == ("True", "NoRequestSucceeded")
    assert condition(s, "Complete")[0] == "False" and condition(s, "Ready")[0] == "False"
    assert condition(s, "Finished") == ("True", "Failed")
    assert "no request succeeded" in (s.message or "") and "line 1: 400 Please use a valid role" in (s.message or "")
    assert [(e.type, e.reason) for e in done.events] == [("Warning", "NoRequestSucceeded")]
    assert "line 2: 400" in done.events[0].message
    assert s.row_errors == errors


def test_some_failed_rows_are_partial_success_with_samples() -> None:
    errors = [row_error(BAD_ROLE, 7)]
    s = finished_with(api.RowCounts(succeeded=9, failed_permanent=1), errors).status
    assert s.phase == "PartiallySucceeded"
    assert condition(s, "Complete") == ("True", "PartiallySucceeded")
    assert condition(s, "Finished") == ("True", "PartiallySucceeded")
    assert "1 request did not succeed; for example line 7: 400 Please use a valid role" in (s.message or "")


def test_success_is_finished_too() -> None:
    s = finished_with(api.RowCounts(succeeded=3), []).status
    assert s.phase == "Succeeded" and condition(s, "Finished") == ("True", "Succeeded")


def test_a_terminal_error_before_any_job_is_finished_and_failed() -> None:
    decision = record_failure(submitted(), "UnknownModel", 404, "model not found", T0, 1)
    assert condition(decision.status, "Finished") == ("True", "Failed")
    assert condition(decision.status, "Failed") == ("True", "UnknownModel")


@pytest.mark.parametrize(
    ("state", "phase", "event"),
    [
        ("JOB_STATE_PAUSED", "Paused", ("Warning", "Paused")),
        ("JOB_STATE_CANCELLING", "Cancelling", ("Normal", "Cancelling")),
        ("JOB_STATE_UPDATING", "Running", ("Normal", "Running")),
        ("JOB_STATE_UNSPECIFIED", "Unknown", ("Warning", "UnknownJobState")),
        ("JOB_STATE_SOMETHING_NEW", "Unknown", ("Warning", "UnknownJobState")),
    ],
)
def test_every_job_state_reads_as_itself(state: str, phase: str, event: tuple[str, str]) -> None:
    decision = decide(spec(), submitted(), observed(state), RESOURCE, DEFAULTS, T0)
    assert decision.status.phase == phase
    assert event in [(e.type, e.reason) for e in decision.events]
    assert decision.actions == [], "a live job is followed, never resubmitted"


def test_a_paused_job_says_what_it_means_and_clears_when_it_runs_again() -> None:
    paused = decide(spec(), submitted(), observed("JOB_STATE_PAUSED"), RESOURCE, DEFAULTS, T0)
    assert condition(paused.status, "Paused") == ("True", "Paused")
    assert "spec.suspend" in (paused.status.message or "")
    running = decide(spec(), paused.status, observed("JOB_STATE_RUNNING"), RESOURCE, DEFAULTS, T0)
    assert running.status.phase == "Running" and condition(running.status, "Paused") == ("False", "NotPaused")
    plain = decide(spec(), submitted(), observed("JOB_STATE_RUNNING"), RESOURCE, DEFAULTS, T0)
    assert all(c.type != "Paused" for c in plain.status.conditions), "no Paused condition on jobs never paused"


def test_a_corrupt_output_is_counted_never_raised() -> None:
    lines = [
        b'{"response": 1, "request": {}}',  # response not an object (a spoof or a corrupt row)
        b"not json at all",
        b"[1, 2]",
        b"\xff\xfe",
        b'{"response": {"usageMetadata": {"promptTokenCount": "lots"}}}',
        b'{"status": 5}',
        b'{"status": "", "response": {"usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 6}}}',
        b'{"status": "Internal error occurred.", "response": {}}',
    ]
    usage, rows, errors = scan(lines)
    assert rows == api.RowCounts(succeeded=1, failed_transient=1, unreadable=6)
    assert usage.unreadable_rows == 6 and usage.prompt_tokens == 4 and usage.total_tokens == 6
    assert errors == [api.RowError(line=8, code=None, message="Internal error occurred.")]


def test_row_errors_keep_at_most_five_samples() -> None:
    lines = [f'{{"status": "Bad Request: row {n}", "response": {{}}}}'.encode() for n in range(9)]
    _, rows, errors = scan(lines)
    assert rows.failed_permanent == 9 and [e.line for e in errors] == [1, 2, 3, 4, 5]
