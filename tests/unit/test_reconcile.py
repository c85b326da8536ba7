"""The pure reconciler, called with values: every decision the operator makes about one resource."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from batch_inference_operator import api
from batch_inference_operator.api.meta import (
    LABEL_ATTEMPT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_SPEC_HASH,
    LABEL_UID,
)
from batch_inference_operator.core.actions import CancelJob, RunPreflight, ScanOutput, SubmitJob, WriteManifest
from batch_inference_operator.core.decide import decide as decide_once
from batch_inference_operator.core.identity import Resource, label_value, spec_hash
from batch_inference_operator.core.ledger import Totals
from batch_inference_operator.core.manifest import record_manifest
from batch_inference_operator.core.policy import Tenancy
from batch_inference_operator.core.record import (
    record_failure,
    record_preflight,
    record_retry,
    record_scan,
    record_submission,
)
from batch_inference_operator.core.resume import output_for
from batch_inference_operator.core.vertex_jobs import ObservedJob


def decide(*args: Any, **kwargs: Any) -> Any:
    """`decide`, then, as the executor does, the results manifest it asks for (written with the last
    read output's counts) and the decision that follows; the manifest step itself is tested in test_ledger."""
    decision = decide_once(*args, **kwargs)
    write = next((a for a in decision.actions if isinstance(a, WriteManifest)), None)
    if write is None:
        return decision
    rows = next(a.rows for a in reversed(decision.status.attempts) if a.rows is not None)
    failed = rows.failed_transient + rows.failed_permanent + rows.incomplete
    totals = Totals(total=rows.succeeded + failed, succeeded=rows.succeeded, failed=failed)
    after = decide_once(args[0], record_manifest(decision.status, write.uri, totals), *args[2:], **kwargs)
    return dataclasses.replace(after, events=decision.events + after.events)


T0 = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC)
RESOURCE = Resource("team-a", "reviews", "0b9f3c1e-uid", generation=1)
DEFAULTS = Tenancy("ns-project", "europe-west4")
JOB = "projects/123456789012/locations/us-central1/batchPredictionJobs/1234567890123456789"


def spec(**changes: Any) -> api.BatchInferenceJobSpec:
    base = {
        "model": "gemini-2.5-flash",
        "project": "demo-project",
        "location": "us-central1",
        "input": {"gcs": {"uris": ["gs://in-bucket/requests.jsonl"]}},
        "output": {"gcs": {"uriPrefix": "gs://out-bucket/results/"}},
        "labels": {"team": "search"},
        "preflight": "Disabled",
    }
    return api.parse_spec({**base, **changes})


def empty() -> api.BatchInferenceJobStatus:
    return api.BatchInferenceJobStatus()


def observed(state: str, **kw: Any) -> ObservedJob:
    return ObservedJob(name=JOB, state=state, create_time=T0, **kw)


def condition(status: api.BatchInferenceJobStatus, type_: str) -> tuple[str, str]:
    found = next(c for c in status.conditions if c.type == type_)
    return found.status, found.reason


def submitted(s: api.BatchInferenceJobSpec | None = None) -> api.BatchInferenceJobStatus:
    """A status right after the job was created, as the handler writes it."""
    s = s or spec()
    first = decide(s, empty(), None, RESOURCE, DEFAULTS, T0).status
    return record_submission(first, 1, observed("JOB_STATE_PENDING"), adopted=False)


def test_a_new_resource_records_the_attempt_before_any_call() -> None:
    decision = decide(spec(), empty(), None, RESOURCE, DEFAULTS, T0)
    status = decision.status
    assert decision.actions == [], "the submitting marker is written first; the create comes next time"
    assert status.phase == "Pending" and status.attempt == 1
    assert status.attempts[0].submitting == T0 and status.attempts[0].input == ["gs://in-bucket/requests.jsonl"]
    assert (status.project, status.location) == ("demo-project", "us-central1")
    assert condition(status, "Submitted") == ("False", "Submitting")
    assert [e.reason for e in decision.events] == ["Accepted"]
    assert status.observed_generation == 1 and status.start_time == T0


def test_the_marker_leads_to_one_submit_with_identity_labels() -> None:
    first = decide(spec(), empty(), None, RESOURCE, DEFAULTS, T0).status
    decision = decide(spec(), first, None, RESOURCE, DEFAULTS, T0 + datetime.timedelta(seconds=1))
    assert decision.status == first, "nothing changes until the job exists"
    [action] = decision.actions
    assert isinstance(action, SubmitJob) and action.attempt == 1
    assert action.request.labels == {
        "team": "search",
        LABEL_MANAGED_BY: "batch-inference-operator",
        LABEL_UID: RESOURCE.uid,
        LABEL_ATTEMPT: "1",
        LABEL_NAMESPACE: "team-a",
        LABEL_NAME: "reviews",
        LABEL_SPEC_HASH: spec_hash(spec(), "demo-project", "us-central1"),
    }
    assert action.identity_labels == {LABEL_UID: RESOURCE.uid, LABEL_ATTEMPT: "1"}
    assert action.adopt_labels == {
        LABEL_NAMESPACE: "team-a",
        LABEL_NAME: "reviews",
        LABEL_SPEC_HASH: action.request.labels[LABEL_SPEC_HASH],
    }
    assert action.request.display_name == "team-a-reviews" and action.request.model == "gemini-2.5-flash"
    assert (
        action.request.input_uris == ("gs://in-bucket/requests.jsonl",)
        and action.request.output_uri == "gs://out-bucket/results/"
    )


def test_project_and_location_fall_back_to_defaults() -> None:
    s = spec(project=None, location=None)
    status = decide(s, empty(), None, RESOURCE, DEFAULTS, T0).status
    assert (status.project, status.location) == ("ns-project", "europe-west4")
    # Once resolved they stay, even if the Namespace annotation changes later.
    again = decide(s, status, None, RESOURCE, Tenancy("other", "us-east1"), T0).status
    assert (again.project, again.location) == ("ns-project", "europe-west4")


def test_no_project_anywhere_is_a_clear_failure() -> None:
    decision = decide(spec(project=None), empty(), None, RESOURCE, Tenancy(None, "us-central1"), T0)
    assert decision.status.phase == "Failed" and decision.actions == []
    assert condition(decision.status, "Failed") == ("True", "InvalidSpec")
    assert "batchinference.dev/project" in decision.status.message
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "InvalidSpec")]


def test_suspend_holds_before_submission_and_release_submits() -> None:
    held = decide(spec(suspend=True), empty(), None, RESOURCE, DEFAULTS, T0)
    assert held.status.phase == "Suspended" and held.status.attempts == [] and held.actions == []
    assert condition(held.status, "Suspended") == ("True", "Suspended")
    again = decide(spec(suspend=True), held.status, None, RESOURCE, DEFAULTS, T0)
    assert again.events == [], "no second event while it stays suspended"
    released = decide(spec(), held.status, None, RESOURCE, DEFAULTS, T0)
    assert released.status.phase == "Pending" and released.status.attempts[0].submitting
    assert condition(released.status, "Suspended") == ("False", "NotSuspended")


def test_record_submission_stores_the_job_and_clears_the_marker() -> None:
    status = submitted()
    assert status.attempts[0].job_name == JOB and status.attempts[0].submitting is None
    assert status.job.name == JOB and status.job.console_url.endswith("/1234567890123456789?project=demo-project")
    assert "us-central1" in status.job.console_url


def test_following_the_job_through_its_states() -> None:
    status = submitted()
    pending = decide(spec(), status, observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0)
    assert pending.status.phase == "Pending" and [e.reason for e in pending.events] == ["Submitted"]
    assert condition(pending.status, "Submitted") == ("True", "Submitted")

    running = decide(spec(), pending.status, observed("JOB_STATE_RUNNING", start_time=T0), RESOURCE, DEFAULTS, T0)
    assert running.status.phase == "Running" and [e.reason for e in running.events] == ["Running"]
    assert running.status.job.start_time == T0

    same = decide(spec(), running.status, observed("JOB_STATE_RUNNING", start_time=T0), RESOURCE, DEFAULTS, T0)
    assert same.status == running.status and same.events == [], "nothing new: no write, no event"

    stats = api.CompletionStats(successful=10, failed=0, incomplete=0)
    end = T0 + datetime.timedelta(minutes=5)
    finished = decide(
        spec(),
        running.status,
        observed(
            "JOB_STATE_SUCCEEDED",
            start_time=T0,
            end_time=end,
            stats=stats,
            output_location="gs://out-bucket/results/prediction-model-x",
        ),
        RESOURCE,
        DEFAULTS,
        end,
    )
    [scan] = finished.actions
    assert isinstance(scan, ScanOutput) and scan.output_location == "gs://out-bucket/results/prediction-model-x"
    assert finished.status.phase == "Running", "the phase waits until the output has been read"
    scanned = record_scan(
        finished.status, 1, api.Usage(requests=10, succeeded=10, prompt_tokens=100), api.RowCounts(succeeded=10)
    )
    done = decide(spec(), scanned, None, RESOURCE, DEFAULTS, end)
    s = done.status
    assert s.phase == "Succeeded" and s.completion_time == end
    assert s.output_location == "gs://out-bucket/results/prediction-model-x" and s.completion_stats == stats
    assert condition(s, "Complete") == ("True", "Succeeded") and condition(s, "Ready") == ("True", "Succeeded")
    assert condition(s, "Failed") == ("False", "Succeeded")
    assert s.attempts[0].state == "JOB_STATE_SUCCEEDED" and s.attempts[0].output_location == s.output_location
    assert [(e.type, e.reason) for e in done.events] == [("Normal", "Succeeded")]
    assert s.usage.prompt_tokens == 100 and s.attempts[0].rows == api.RowCounts(succeeded=10)

    after = decide(spec(), s, observed("JOB_STATE_FAILED"), RESOURCE, DEFAULTS, end)
    assert after.status == s.model_copy(update={"observed_generation": 1}), "a finished resource is final"


@pytest.mark.parametrize(
    ("state", "stats", "phase", "failed_reason"),
    [
        ("JOB_STATE_SUCCEEDED", api.CompletionStats(successful=8, failed=2), "PartiallySucceeded", None),
        ("JOB_STATE_PARTIALLY_SUCCEEDED", api.CompletionStats(successful=5, incomplete=5), "PartiallySucceeded", None),
        ("JOB_STATE_FAILED", None, "Failed", "VertexJobFailed"),
        ("JOB_STATE_EXPIRED", None, "Failed", "Expired"),
        ("JOB_STATE_CANCELLED", None, "Cancelled", "Cancelled"),
    ],
)
def test_outcomes_read_as_they_are(
    state: str, stats: api.CompletionStats | None, phase: str, failed_reason: str | None
) -> None:
    error = api.JobError(code=13, message="System error") if state == "JOB_STATE_FAILED" else None
    once = spec(resume={"maxAttempts": 1})
    decision = decide(once, submitted(once), observed(state, stats=stats, error=error), RESOURCE, DEFAULTS, T0)
    assert decision.status.phase == phase
    if failed_reason:
        assert condition(decision.status, "Failed") == ("True", failed_reason)
        assert condition(decision.status, "Complete")[0] == "False"
        assert condition(decision.status, "Ready")[0] == "False"
        assert decision.events[-1].type == "Warning"
    else:
        assert condition(decision.status, "Complete") == ("True", "PartiallySucceeded")
    if error:
        assert "error 13: System error" in decision.status.message
        assert decision.status.attempts[0].error == error


def test_an_observation_of_another_job_is_ignored() -> None:
    status = submitted()
    other = ObservedJob(name=JOB.replace("1234567890123456789", "9"), state="JOB_STATE_FAILED")
    assert decide(spec(), status, other, RESOURCE, DEFAULTS, T0).status.phase == "Pending"


def test_condition_transition_times_move_only_on_change() -> None:
    pending = decide(spec(), submitted(), observed("JOB_STATE_PENDING"), RESOURCE, DEFAULTS, T0).status
    later = T0 + datetime.timedelta(minutes=1)
    running = decide(spec(), pending, observed("JOB_STATE_RUNNING"), RESOURCE, DEFAULTS, later).status
    submitted_at = {c.type: c.last_transition_time for c in running.conditions}
    assert submitted_at["Submitted"] == T0, "Submitted stayed True"


def test_retry_and_failure_records() -> None:
    first = decide(spec(), empty(), None, RESOURCE, DEFAULTS, T0).status
    retried = record_retry(first, "create: Vertex AI answered 429", T0, 1)
    assert retried.message.endswith("429") and condition(retried, "Ready") == ("False", "Retrying")
    assert retried.attempts[0].submitting == T0, "the marker stays: the next try adopts or creates"
    failed = record_failure(first, "UnknownModel", 404, "The PublisherModel x does not exist.", T0, 1)
    assert failed.status.phase == "Failed" and condition(failed.status, "Failed") == ("True", "UnknownModel")
    assert failed.status.attempts[0].submitting is None and failed.status.attempts[0].error.code == 404
    assert failed.events[0].message == "The PublisherModel x does not exist."


def test_spec_hash_covers_what_the_job_computes_only() -> None:
    base = spec_hash(spec(), "demo-project", "us-central1")
    assert spec_hash(spec(labels={"team": "ads"}, suspend=True), "demo-project", "us-central1") == base
    assert spec_hash(spec(model="gemini-2.5-pro"), "demo-project", "us-central1") != base
    assert spec_hash(spec(), "demo-project", "europe-west4") != base
    assert len(base) == 16


def test_label_values_are_sanitized() -> None:
    assert label_value("My.Job_Name") == "my_job_name"
    assert len(label_value("x" * 100)) == 63


def finished_attempt(
    state: str,
    rows: api.RowCounts | None,
    *,
    code: int | None = None,
    started: bool = True,
    resume: dict | None = None,
    **changes: Any,
) -> tuple[api.BatchInferenceJobSpec, api.BatchInferenceJobStatus]:
    """A status whose first attempt ended in `state` and whose output has been read."""
    s = spec(resume=resume or {"maxAttempts": 3, "backoffSeconds": 60}, **changes)
    status = submitted(s)
    end = T0 + datetime.timedelta(minutes=10)
    job = observed(
        state,
        start_time=T0 if started else None,
        end_time=end,
        error=api.JobError(code=code, message="boom") if code else None,
        output_location="gs://out-bucket/results/prediction-model-1" if started else None,
        stats=api.CompletionStats(successful=rows.succeeded if rows else 0),
    )
    status = decide(s, status, job, RESOURCE, DEFAULTS, end).status
    if rows is not None:
        status = record_scan(status, 1, api.Usage(requests=1), rows)
    return s, status


AFTER_BACKOFF = T0 + datetime.timedelta(minutes=12)


def test_preflight_runs_before_the_first_attempt() -> None:
    s = spec(preflight="Enabled")
    first = decide(s, empty(), None, RESOURCE, DEFAULTS, T0)
    assert first.actions == [
        RunPreflight(
            ("gs://in-bucket/requests.jsonl",), "us-central1", "demo-project", gcs_output="gs://out-bucket/results/"
        )
    ]
    assert first.status.attempts == []
    checked = record_preflight(first.status, api.PreflightReport(requests=10))
    after = decide(s, checked, None, RESOURCE, DEFAULTS, T0)
    assert after.actions == [] and after.status.attempts[0].submitting == T0


def test_preflight_of_bigquery_input_and_output() -> None:
    s = spec(
        preflight="Enabled",
        input={"bigquery": {"table": "bq://demo-project.ds.requests"}},
        output={"bigquery": {"dataset": "bq://demo-project.results"}},
    )
    [check] = decide(s, empty(), None, RESOURCE, DEFAULTS, T0).actions
    assert check == RunPreflight(
        ("bq://demo-project.ds.requests",), "us-central1", "demo-project", "bq://demo-project.results"
    )


BQ_OUTPUT = "bq://demo-project.results.predictions_2026_11_24T10_00_00_000000Z"


def test_a_bigquery_attempt_is_read_by_query_and_resumed_from_its_output_table() -> None:
    s = spec(
        input={"bigquery": {"table": "bq://demo-project.ds.requests"}},
        output={"bigquery": {"dataset": "bq://demo-project.results"}},
        resume={"maxAttempts": 3, "backoffSeconds": 0},
    )
    status = submitted(s)
    end = T0 + datetime.timedelta(minutes=10)
    job = observed("JOB_STATE_FAILED", start_time=T0, end_time=end, output_location=BQ_OUTPUT)
    ended = decide(s, status, job, RESOURCE, DEFAULTS, end)
    assert ended.actions == [ScanOutput(1, BQ_OUTPUT, ("bq://demo-project.ds.requests",))]
    assert ended.status.output_location == BQ_OUTPUT
    read = record_scan(ended.status, 1, api.Usage(requests=10), api.RowCounts(succeeded=6, incomplete=4))
    resumed = decide(s, read, job, RESOURCE, DEFAULTS, end)
    assert resumed.status.attempts[1].input == [BQ_OUTPUT], "the next attempt reads the previous output table"
    [submit] = decide(s, resumed.status, None, RESOURCE, DEFAULTS, end).actions
    assert isinstance(submit, SubmitJob) and submit.request.input_uris == (BQ_OUTPUT,)
    assert submit.request.output_uri == "bq://demo-project.results", "a dataset output gets a new table per attempt"


def test_a_named_output_table_is_not_both_input_and_output_of_a_resume() -> None:
    named = "bq://demo-project.results.answers"
    s = spec(output={"bigquery": {"table": named}})
    assert output_for(s, ("gs://in-bucket/requests.jsonl",)) == named
    assert output_for(s, (named,)) == "bq://demo-project.results", "a new table next to it, never appended to"
    assert output_for(spec(), ("gs://out-bucket/results/x/predictions.jsonl",)) == "gs://out-bucket/results/"


def test_a_failed_attempt_is_resumed_from_its_output_after_the_backoff() -> None:
    s, status = finished_attempt("JOB_STATE_FAILED", api.RowCounts(succeeded=6, incomplete=4), code=13)
    waiting = decide(s, status, None, RESOURCE, DEFAULTS, T0 + datetime.timedelta(minutes=10, seconds=30))
    assert waiting.status.phase == "Resuming" and waiting.actions == [] and len(waiting.status.attempts) == 1
    assert "4 unfinished requests" in waiting.status.message
    resumed = decide(s, waiting.status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert [a.attempt for a in resumed.status.attempts] == [1, 2] and resumed.status.attempt == 2
    second = resumed.status.attempts[1]
    assert second.input == ["gs://out-bucket/results/prediction-model-1/predictions.jsonl"] and second.submitting
    assert resumed.status.attempts[0].state == "JOB_STATE_FAILED", "the first attempt is kept as it ended"
    assert [e.reason for e in resumed.events] == ["Resuming"]
    [submit] = decide(s, resumed.status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF).actions
    assert isinstance(submit, SubmitJob) and submit.attempt == 2 and submit.adopt_labels is None
    assert submit.request.labels["bij-attempt"] == "2" and submit.request.input_uris == tuple(second.input)


def test_an_attempt_that_never_ran_resubmits_the_original_input() -> None:
    s, status = finished_attempt("JOB_STATE_EXPIRED", None, started=False)
    resumed = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert resumed.status.attempts[1].input == ["gs://in-bucket/requests.jsonl"]


def test_rejected_input_is_never_resumed() -> None:
    s, status = finished_attempt("JOB_STATE_FAILED", None, code=3, started=False)
    done = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert done.status.phase == "Failed" and len(done.status.attempts) == 1
    assert condition(done.status, "Failed") == ("True", "InvalidInput")


@pytest.mark.parametrize(
    ("retry", "rows", "resumes"),
    [
        ("Transient", api.RowCounts(succeeded=8, failed_transient=1, failed_permanent=1), True),
        ("Transient", api.RowCounts(succeeded=8, failed_permanent=2), False),
        ("All", api.RowCounts(succeeded=8, failed_permanent=2), True),
        ("Never", api.RowCounts(succeeded=8, failed_transient=2), False),
        ("Never", api.RowCounts(succeeded=8, incomplete=2), True),
        ("Transient", api.RowCounts(succeeded=10), False),
    ],
)
def test_failed_rows_of_a_succeeded_job_follow_retry_failed_requests(
    retry: str, rows: api.RowCounts, resumes: bool
) -> None:
    s, status = finished_attempt(
        "JOB_STATE_SUCCEEDED", rows, resume={"retryFailedRequests": retry, "backoffSeconds": 0}
    )
    after = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF).status
    assert (len(after.attempts) == 2) == resumes
    if not resumes:
        expected = "PartiallySucceeded" if rows.failed_permanent + rows.failed_transient else "Succeeded"
        assert after.phase == expected


def test_attempts_are_bounded_and_the_last_outcome_decides_the_phase() -> None:
    s, status = finished_attempt(
        "JOB_STATE_SUCCEEDED", api.RowCounts(succeeded=8, failed_transient=2), resume={"maxAttempts": 1}
    )
    done = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert done.status.phase == "PartiallySucceeded" and len(done.status.attempts) == 1
    assert condition(done.status, "Complete") == ("True", "PartiallySucceeded")
    assert "2 requests did not succeed" in done.status.message


def test_suspending_a_running_job_cancels_it_and_unsuspending_resumes() -> None:
    s = spec(suspend=True)
    running = decide(spec(), submitted(), observed("JOB_STATE_RUNNING", start_time=T0), RESOURCE, DEFAULTS, T0).status
    suspending = decide(s, running, None, RESOURCE, DEFAULTS, T0)
    assert suspending.actions == [CancelJob(1, "demo-project", "us-central1", JOB)]
    assert suspending.status.phase == "Suspended" and suspending.status.attempts[0].cancel_requested
    again = decide(s, suspending.status, observed("JOB_STATE_CANCELLING", start_time=T0), RESOURCE, DEFAULTS, T0)
    assert again.actions == [] and again.status.phase == "Suspended", "one cancel, however often it runs"
    cancelled = observed(
        "JOB_STATE_CANCELLED", start_time=T0, end_time=T0, output_location="gs://out-bucket/results/prediction-model-1"
    )
    scanned = record_scan(
        decide(s, again.status, cancelled, RESOURCE, DEFAULTS, T0).status,
        1,
        api.Usage(),
        api.RowCounts(succeeded=3, incomplete=7),
    )
    held = decide(s, scanned, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert held.status.phase == "Suspended" and len(held.status.attempts) == 1
    released = decide(spec(), held.status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert len(released.status.attempts) == 2 and released.status.phase == "Resuming"
    assert released.status.attempts[1].input == ["gs://out-bucket/results/prediction-model-1/predictions.jsonl"]


def test_low_cache_hits_despite_shared_prefixes_warn() -> None:
    s, status = finished_attempt("JOB_STATE_SUCCEEDED", api.RowCounts(succeeded=10))
    status.preflight = api.PreflightReport(requests=10, shared_prefix_requests=9)
    status.usage = api.Usage(requests=10, prompt_tokens=30000, cached_tokens=100, cache_hit_ratio=0.0033)
    done = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert ("Warning", "ImplicitCachingIneffective") in [(e.type, e.reason) for e in done.events]
    status.usage = api.Usage(requests=10, prompt_tokens=30000, cached_tokens=20000, cache_hit_ratio=0.66)
    done = decide(s, status, None, RESOURCE, DEFAULTS, AFTER_BACKOFF)
    assert "ImplicitCachingIneffective" not in [e.reason for e in done.events]


def test_status_patches_null_out_vanished_nested_keys() -> None:
    from batch_inference_operator.controller.status_patch import merge_patch

    old = {"job": {"name": "a", "startTime": "t1", "endTime": "t2"}, "phase": "Resuming", "attempts": [1]}
    new = {"job": {"name": "b"}, "phase": "Resuming", "attempts": [1, 2]}
    assert merge_patch(old, new) == {"job": {"name": "b", "startTime": None, "endTime": None}, "attempts": [1, 2]}
    assert merge_patch(new, new) == {}


def peer(uid: str, created: str, phase: str | None, attempted: bool, location: str = "us-central1") -> Any:
    from batch_inference_operator.core.admission import Peer

    return Peer(uid, created, f"team-a/{uid}", "demo-project", location, phase, attempted)


def test_the_queue_admits_in_creation_order_up_to_the_limit() -> None:
    from batch_inference_operator.core.admission import Queue, admission

    me = Resource("team-a", "reviews", "uid-me")
    running = (peer("a", "2026-11-24T09:00:00Z", "Running", True), peer("b", "2026-11-24T09:01:00Z", "Resuming", True))
    elsewhere = (peer("c", "2026-11-24T09:00:00Z", "Running", True, location="europe-west4"),)
    finished = (peer("d", "2026-11-24T08:00:00Z", "Succeeded", True),)
    earlier = (peer("e", "2026-11-24T09:30:00Z", "Queued", False),)
    later = (peer("f", "2026-11-24T11:00:00Z", "Queued", False),)
    me_created = "2026-11-24T10:00:00Z"
    assert admission(me, me_created, "demo-project", "us-central1", Queue(0, running)) == (True, 0, 0)
    assert admission(me, me_created, "demo-project", "us-central1", Queue(3, running + elsewhere + finished + later))[0]
    assert admission(me, me_created, "demo-project", "us-central1", Queue(3, running + earlier)) == (False, 2, 2)
    assert admission(me, me_created, "demo-project", "us-central1", Queue(2, running)) == (False, 2, 1)


def test_a_resource_over_the_limit_waits_queued() -> None:
    from batch_inference_operator.core.admission import Queue

    queue = Queue(1, (peer("a", "2026-11-24T09:00:00Z", "Running", True),))
    waiting = decide(spec(), empty(), None, RESOURCE, DEFAULTS, T0, queue, "2026-11-24T10:00:00Z")
    assert waiting.status.phase == "Queued" and waiting.status.attempts == [] and waiting.actions == []
    assert "1 of at most 1 job is running in demo-project/us-central1" in waiting.status.message
    assert [e.reason for e in waiting.events] == ["Queued"]
    again = decide(spec(), waiting.status, None, RESOURCE, DEFAULTS, T0, queue, "2026-11-24T10:00:00Z")
    assert again.events == []
    free = Queue(1, (peer("a", "2026-11-24T09:00:00Z", "Succeeded", True),))
    admitted = decide(spec(), waiting.status, None, RESOURCE, DEFAULTS, T0, free, "2026-11-24T10:00:00Z")
    assert admitted.status.phase == "Pending" and admitted.status.attempts[0].submitting == T0


def test_an_attempt_without_output_leaves_the_previous_output_in_place() -> None:
    from batch_inference_operator.core.record import record_no_output

    status = api.BatchInferenceJobStatus(
        output_location="gs://out/2",
        attempts=[
            api.Attempt(attempt=1, output_location="gs://out/1"),
            api.Attempt(attempt=2, output_location="gs://out/2"),
        ],
    )
    after = record_no_output(status, 2)
    assert after.output_location == "gs://out/1" and after.attempts[1].rows is None, "not read: Vertex's counts stand"
    assert after.attempts[1].output_location is None and status.attempts[1].output_location == "gs://out/2"
    only = record_no_output(
        api.BatchInferenceJobStatus(
            output_location="gs://out/1", attempts=[api.Attempt(attempt=1, output_location="gs://out/1")]
        ),
        1,
    )
    assert only.output_location is None


@pytest.mark.parametrize(
    ("gcs", "bigquery", "spec_changes", "allowed"),
    [
        (None, None, {}, True),
        (("gs://in-bucket/", "gs://out-bucket/results/"), None, {}, True),
        (("gs://in-bucket", "gs://out-bucket"), None, {}, True),
        (("gs://in-bucket/",), None, {}, False),  # the output is elsewhere
        (("gs://in-bucket-2/", "gs://out-bucket/"), None, {}, False),  # a prefix is not a bucket-name prefix
        ((), None, {}, False),
        (("gs://in-bucket/requests", "gs://out-bucket/"), None, {}, False),  # a prefix is a folder, not a name start
        (None, ("bq://demo-project.ds",), {"input": {"bigquery": {"table": "bq://demo-project.ds.t"}}}, True),
        (None, ("bq://demo-project.other",), {"input": {"bigquery": {"table": "bq://demo-project.ds.t"}}}, False),
        (
            None,
            ("bq://demo-project.ds",),
            {
                "input": {"bigquery": {"table": "bq://demo-project.ds.t"}},
                "output": {"bigquery": {"table": "bq://demo-project.other.results"}},
            },
            False,  # the output table is in another team's dataset
        ),
    ],
)
def test_the_namespace_data_policy_is_enforced_before_submit(
    gcs: Any, bigquery: Any, spec_changes: dict, allowed: bool
) -> None:
    policy = Tenancy("ns-project", "europe-west4", gcs, bigquery)
    decision = decide(spec(**spec_changes), empty(), None, RESOURCE, policy, T0)
    if allowed:
        assert decision.status.phase == "Pending"
    else:
        assert decision.status.phase == "Failed" and decision.status.attempts == []
        assert condition(decision.status, "Failed") == ("True", "PolicyViolation")
        assert "outside the namespace's allowed" in decision.status.message
