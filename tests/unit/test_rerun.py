"""Re-running a finished job through the batchinference.dev/rerun annotation: each value once, from the
last output for row failures, from the input for input errors, through the usual submit protocol."""

from __future__ import annotations

import dataclasses
import datetime

from test_reconcile import AFTER_BACKOFF, DEFAULTS, RESOURCE, condition, decide, finished_attempt, spec, submitted

from batch_inference_operator import api
from batch_inference_operator.core.actions import RunPreflight, SubmitJob
from batch_inference_operator.core.record import record_preflight, record_submission
from batch_inference_operator.core.vertex_jobs import ObservedJob

LATER = AFTER_BACKOFF + datetime.timedelta(hours=1)


def annotated(value: str) -> object:
    return dataclasses.replace(RESOURCE, rerun=value)


def finished(
    state: str, rows: api.RowCounts | None, **kw: object
) -> tuple[api.BatchInferenceJobSpec, api.BatchInferenceJobStatus]:
    s, status = finished_attempt(state, rows, resume={"maxAttempts": 1, "backoffSeconds": 0}, **kw)
    done = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF).status
    assert done.phase in api.TERMINAL_PHASES, done.phase
    return s, done


def test_a_new_value_on_a_partial_job_reruns_its_unfinished_rows_from_the_last_output() -> None:
    s, done = finished("JOB_STATE_SUCCEEDED", api.RowCounts(succeeded=8, failed_permanent=2))
    assert done.phase == "PartiallySucceeded"
    accepted = decide(s, done, None, annotated("1"), DEFAULTS, LATER)
    status = accepted.status
    assert status.phase == "Pending" and status.rerun.state == "Pending" and status.rerun.source == "Output"
    assert status.completion_time is None and condition(status, "Finished") == ("False", "Rerun")
    assert [e.reason for e in accepted.events] == ["Rerun"] and accepted.actions == []
    started = decide(s, status, None, annotated("1"), DEFAULTS, LATER)
    assert [a.attempt for a in started.status.attempts] == [1, 2]
    second = started.status.attempts[1]
    assert second.input == ["gs://out-bucket/results/prediction-model-1/predictions.jsonl"] and second.submitting
    assert started.status.rerun.state == "Started" and started.status.rerun.attempt == 2
    [submit] = decide(s, started.status, None, annotated("1"), DEFAULTS, LATER).actions
    assert isinstance(submit, SubmitJob) and submit.attempt == 2 and submit.identity_labels["bij-attempt"] == "2"
    assert submit.adopt_labels is None, "a re-run is new work: it never adopts an earlier resource's job"


def test_the_same_value_never_reruns_twice() -> None:
    s, done = finished("JOB_STATE_SUCCEEDED", api.RowCounts(succeeded=8, failed_permanent=2))
    started = decide(
        s, decide(s, done, None, annotated("1"), DEFAULTS, LATER).status, None, annotated("1"), DEFAULTS, LATER
    )
    job = ObservedJob(
        name="projects/1/locations/us-central1/batchPredictionJobs/2",
        state="JOB_STATE_SUCCEEDED",
        start_time=LATER,
        end_time=LATER,
        stats=api.CompletionStats(successful=10),
    )
    after = record_submission(started.status, 2, job, adopted=False)
    second_done = decide(s, after, job, annotated("1"), DEFAULTS, LATER).status
    assert second_done.phase == "Succeeded" and len(second_done.attempts) == 2
    again = decide(s, second_done, None, annotated("1"), DEFAULTS, LATER + datetime.timedelta(hours=1))
    assert again.status.phase == "Succeeded" and again.actions == [] and again.events == []
    # A GitOps revert to a value acted on before is not a new request either.
    third = decide(s, second_done, None, annotated("2"), DEFAULTS, LATER).status
    assert third.rerun.value == "2" and third.phase == "Pending"
    reverted = third.model_copy(update={"phase": "Succeeded"})
    assert decide(s, reverted, None, annotated("1"), DEFAULTS, LATER).status.phase == "Succeeded"


def test_an_input_error_reruns_from_the_input_after_a_new_preflight() -> None:
    _, done = finished("JOB_STATE_FAILED", None, code=3, started=False)
    s = spec(preflight="Enabled", resume={"maxAttempts": 1, "backoffSeconds": 0})
    done = record_preflight(done, api.PreflightReport(requests=10))
    assert done.phase == "Failed"
    accepted = decide(s, done, None, annotated("fixed"), DEFAULTS, LATER).status
    assert accepted.rerun.source == "Input" and accepted.preflight is None, "the fixed input is checked again"
    [check] = decide(s, accepted, None, annotated("fixed"), DEFAULTS, LATER).actions
    assert isinstance(check, RunPreflight) and check.uris == ("gs://in-bucket/requests.jsonl",)
    checked = record_preflight(accepted, api.PreflightReport(requests=10))
    started = decide(s, checked, None, annotated("fixed"), DEFAULTS, LATER).status
    assert started.attempts[-1].input == ["gs://in-bucket/requests.jsonl"] and started.attempts[-1].attempt == 2


def test_a_value_set_before_the_job_finished_is_recorded_and_ignored() -> None:
    s = spec()
    fresh = decide(s, api.BatchInferenceJobStatus(), None, annotated("1"), DEFAULTS, LATER)
    assert fresh.status.rerun.state == "Ignored" and fresh.events == [], "created with it: its first run is that run"
    running = submitted(s)
    ignored = decide(s, running, None, annotated("2"), DEFAULTS, LATER)
    assert ignored.status.rerun.state == "Ignored" and ignored.status.phase == running.phase
    assert [(e.type, e.reason) for e in ignored.events] == [("Warning", "RerunIgnored")]


def test_a_rerun_has_its_own_attempt_budget() -> None:
    s, done = finished("JOB_STATE_FAILED", api.RowCounts(succeeded=5, incomplete=5), code=13)
    assert done.phase == "Failed", "maxAttempts 1 is spent"
    started = decide(
        s, decide(s, done, None, annotated("a"), DEFAULTS, LATER).status, None, annotated("a"), DEFAULTS, LATER
    )
    assert started.status.attempts[-1].attempt == 2 and started.status.attempts[-1].submitting


def test_a_rerun_of_a_fully_succeeded_job_runs_the_input_again() -> None:
    s, done = finished("JOB_STATE_SUCCEEDED", api.RowCounts(succeeded=10))
    assert done.phase == "Succeeded"
    assert decide(s, done, None, annotated("x"), DEFAULTS, LATER).status.rerun.source == "Input"
