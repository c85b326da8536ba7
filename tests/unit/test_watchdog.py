"""The stall watchdog, driven by the decision's clock: nothing sleeps."""

from __future__ import annotations

import datetime

from test_reconcile import DEFAULTS, JOB, RESOURCE, T0, condition, observed, spec, submitted

from batch_inference_operator import api
from batch_inference_operator.core.actions import CancelJob, SubmitJob
from batch_inference_operator.core.decide import decide
from batch_inference_operator.core.record import record_submission
from batch_inference_operator.core.vertex_jobs import ObservedJob

HOUR = datetime.timedelta(hours=1)


def stats(successful: int) -> api.CompletionStats:
    return api.CompletionStats(successful=successful, failed=0, incomplete=100 - successful)


def test_a_job_waiting_too_long_in_the_queue_is_stalled_then_clears_when_it_runs() -> None:
    s = spec(stall={"queuedAfterSeconds": 3600})
    early = decide(s, submitted(s), observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0 + 0.5 * HOUR)
    assert all(c.type != "Stalled" for c in early.status.conditions)

    late = decide(s, early.status, observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0 + 2 * HOUR)
    assert condition(late.status, "Stalled") == ("True", "QueuedTooLong")
    assert [(e.type, e.reason) for e in late.events] == [("Warning", "Stalled")]
    assert "waited 2h00m in Vertex's queue" in late.events[0].message and late.actions == []
    again = decide(s, late.status, observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0 + 3 * HOUR)
    assert "Stalled" not in [e.reason for e in again.events], "one Event when the stall starts, not one per turn"

    running = decide(s, again.status, observed("JOB_STATE_RUNNING", stats=stats(1)), RESOURCE, DEFAULTS, T0 + 3 * HOUR)
    assert condition(running.status, "Stalled") == ("False", "Progressing")
    assert ("Normal", "Unstalled") in [(e.type, e.reason) for e in running.events]


def test_a_running_job_whose_counts_do_not_move_is_stalled() -> None:
    s = spec(stall={"runningAfterSeconds": 7200})
    start = decide(s, submitted(s), observed("JOB_STATE_RUNNING", stats=stats(10)), RESOURCE, DEFAULTS, T0)
    moving = decide(s, start.status, observed("JOB_STATE_RUNNING", stats=stats(20)), RESOURCE, DEFAULTS, T0 + HOUR)
    still = decide(
        s, moving.status, observed("JOB_STATE_RUNNING", stats=stats(20)), RESOURCE, DEFAULTS, T0 + 2.5 * HOUR
    )
    assert all(c.type != "Stalled" for c in still.status.conditions), "1.5 h since the counts last moved"
    stuck = decide(s, still.status, observed("JOB_STATE_RUNNING", stats=stats(20)), RESOURCE, DEFAULTS, T0 + 3.5 * HOUR)
    assert condition(stuck.status, "Stalled") == ("True", "NoProgress")
    assert "without its completion counts moving at 20 succeeded" in stuck.events[0].message
    assert stuck.actions == [], "a running job is never resubmitted: its rows would be paid twice"


def test_resubmit_cancels_a_job_that_never_started_and_submits_a_new_attempt() -> None:
    s = spec(stall={"queuedAfterSeconds": 3600, "action": "Resubmit"})
    late = decide(s, submitted(s), observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0 + 2 * HOUR)
    [cancel] = late.actions
    assert isinstance(cancel, CancelJob) and late.status.phase == "Pending", "not shown as Suspended"
    assert "Resubmitting" in [e.reason for e in late.events]

    cancelled = decide(s, late.status, observed("JOB_STATE_CANCELLED"), RESOURCE, DEFAULTS, T0 + 2 * HOUR)
    assert cancelled.status.attempts[-1].attempt == 2 and cancelled.status.phase == "Resuming"
    assert cancelled.status.attempts[-1].input == ["gs://in-bucket/requests.jsonl"], "the job never ran: original input"
    resubmit = decide(s, cancelled.status, None, RESOURCE, DEFAULTS, T0 + 2 * HOUR).actions
    assert isinstance(resubmit[0], SubmitJob) and resubmit[0].attempt == 2


def test_resubmits_count_as_attempts_and_never_cancel_the_last_one() -> None:
    s = spec(stall={"queuedAfterSeconds": 3600, "action": "Resubmit"}, resume={"maxAttempts": 2})
    first = ObservedJob(name=JOB, state="JOB_STATE_PENDING", create_time=T0)
    late = decide(s, submitted(s), first, RESOURCE, DEFAULTS, T0 + 2 * HOUR)
    assert isinstance(late.actions[0], CancelJob)
    gone = ObservedJob(name=JOB, state="JOB_STATE_CANCELLED", create_time=T0)
    resumed = decide(s, late.status, gone, RESOURCE, DEFAULTS, T0 + 2 * HOUR).status
    second = ObservedJob(name=f"{JOB}2", state="JOB_STATE_PENDING", create_time=T0 + 2 * HOUR)
    waiting = record_submission(resumed, 2, second, adopted=False)
    stuck = decide(s, waiting, second, RESOURCE, DEFAULTS, T0 + 5 * HOUR)
    assert condition(stuck.status, "Stalled") == ("True", "QueuedTooLong")
    assert stuck.actions == [], "the last allowed attempt is reported, never cancelled: that would end the resource"
    assert len(stuck.status.attempts) == 2


def test_a_finished_job_is_neither_stalled_nor_paused() -> None:
    s = spec(stall={"queuedAfterSeconds": 3600}, resume={"maxAttempts": 1})
    late = decide(s, submitted(s), observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0 + 2 * HOUR)
    assert condition(late.status, "Stalled")[0] == "True"
    done = decide(s, late.status, observed("JOB_STATE_EXPIRED"), RESOURCE, DEFAULTS, T0 + 3 * HOUR)
    assert done.status.phase == "Failed" and condition(done.status, "Stalled")[0] == "False"


def test_a_job_with_no_output_file_keeps_vertexs_counts() -> None:
    """An output that cannot be read must not turn a success into NoRequestSucceeded."""
    from batch_inference_operator.core.record import record_no_output

    s = spec(resume={"maxAttempts": 1})
    stats = api.CompletionStats(successful=300)
    ended = decide(
        s,
        submitted(s),
        observed("JOB_STATE_SUCCEEDED", start_time=T0, end_time=T0, stats=stats, output_location="gs://o/p"),
        RESOURCE,
        DEFAULTS,
        T0,
    )
    done = decide(s, record_no_output(ended.status, 1), None, RESOURCE, DEFAULTS, T0)
    assert done.status.phase == "Succeeded"
