"""The controller's parts with fakes at the adapter boundary: the adoption protocol, cancellation, the
executor's error handling, the checks, and `observe()` on google-genai's own types. No network, no
monkeypatching: the fakes are passed in where the real adapters would be."""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import kopf
import pytest
from google.genai import types

from batch_inference_operator import api
from batch_inference_operator.adapters.bigquery import TableInfo
from batch_inference_operator.adapters.errors import AdapterError
from batch_inference_operator.adapters.vertex import observe
from batch_inference_operator.controller import checks, executor
from batch_inference_operator.controller.kube import StatusConflict
from batch_inference_operator.controller.lifecycle import reconcile_resource, release_resource
from batch_inference_operator.controller.limits import CreateLimiter
from batch_inference_operator.controller.runtime import Backoff, Marker, Runtime
from batch_inference_operator.core.actions import CancelJob, Decision, RunPreflight, SubmitJob
from batch_inference_operator.core.admission import Queue
from batch_inference_operator.core.decide import decide
from batch_inference_operator.core.identity import Resource
from batch_inference_operator.core.policy import Tenancy
from batch_inference_operator.core.preflight_bigquery import Column
from batch_inference_operator.core.vertex_jobs import JobRequest, ObservedJob
from batch_inference_operator.settings import Settings

T0 = datetime.datetime(2026, 11, 29, 10, 0, tzinfo=datetime.UTC)
RESOURCE = Resource("team-a", "reviews", "uid-1")
TENANCY = Tenancy("demo-project", "us-central1")
SETTLE = datetime.timedelta(seconds=150)
TIMEOUT = datetime.timedelta(seconds=60)


class FakeVertex:
    """Jobs in memory, found by labels as Vertex's list filter finds them."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[ObservedJob, dict[str, str]]] = {}
        self.calls: list[str] = []
        self.fail_next: dict[str, AdapterError] = {}
        self._ids = itertools.count(1)

    def add(self, state: str, labels: dict[str, str]) -> ObservedJob:
        name = f"projects/1/locations/us-central1/batchPredictionJobs/{next(self._ids)}"
        job = ObservedJob(name=name, state=state, create_time=T0)
        self.jobs[name] = (job, labels)
        return job

    def _maybe_fail(self, method: str) -> None:
        self.calls.append(method)
        if method in self.fail_next:
            raise self.fail_next.pop(method)

    async def get(self, project: str, location: str, name: str) -> ObservedJob:
        self._maybe_fail("get")
        return self.jobs[name][0]

    async def find_by_labels(
        self, project: str, location: str, labels: dict[str, str], states: Iterable[str] = ()
    ) -> list[ObservedJob]:
        self._maybe_fail("list")
        wanted = set(states)
        return [
            job
            for job, have in self.jobs.values()
            if all(have.get(k) == v for k, v in labels.items()) and (not wanted or job.state in wanted)
        ]

    async def create(self, request: JobRequest, attempt: int) -> ObservedJob:
        self._maybe_fail("create")
        return self.add("JOB_STATE_PENDING", request.labels)

    async def cancel(self, project: str, location: str, name: str) -> None:
        self._maybe_fail("cancel")
        labels = self.jobs[name][1]
        self.jobs[name] = (ObservedJob(name=name, state="JOB_STATE_CANCELLING", create_time=T0), labels)


def spec(**changes: Any) -> api.BatchInferenceJobSpec:
    base = {
        "model": "gemini-2.5-flash",
        "input": {"gcs": {"uris": ["gs://in-bucket/requests.jsonl"]}},
        "output": {"gcs": {"uriPrefix": "gs://out-bucket/results/"}},
        "preflight": "Disabled",
    }
    return api.parse_spec({**base, **changes})


def submit_action() -> tuple[api.BatchInferenceJobSpec, Decision]:
    """The decision that asks for the first attempt's SubmitJob (marker written, then submit)."""
    s = spec()
    marked = decide(s, api.BatchInferenceJobStatus(), None, RESOURCE, TENANCY, T0).status
    decision = decide(s, marked, None, RESOURCE, TENANCY, T0)
    assert isinstance(decision.actions[0], SubmitJob)
    return s, decision


async def test_submit_creates_once_then_adopts_its_own_job() -> None:
    vertex = FakeVertex()
    _, decision = submit_action()
    action = decision.actions[0]
    assert isinstance(action, SubmitJob)

    done = await executor.submit(vertex, action, True, T0, SETTLE, TIMEOUT)
    assert done.how == "created" and vertex.calls == ["list", "list", "create"], "no GET: the create says it all"

    vertex.calls.clear()
    # e.g. after a crash before the status write
    again = await executor.submit(vertex, action, False, T0, SETTLE, TIMEOUT)
    assert again.how == "adopted" and again.job == done.job and "create" not in vertex.calls
    assert len(vertex.jobs) == 1


@pytest.mark.parametrize(
    ("state", "adopted"),
    [("JOB_STATE_SUCCEEDED", True), ("JOB_STATE_RUNNING", True), ("JOB_STATE_FAILED", False)],
)
async def test_a_recreated_resource_adopts_only_adoptable_jobs(state: str, adopted: bool) -> None:
    vertex = FakeVertex()
    _, decision = submit_action()
    action = decision.actions[0]
    assert isinstance(action, SubmitJob) and action.adopt_labels
    earlier = vertex.add(state, {**action.adopt_labels, "bij-uid": "an-earlier-uid", "bij-attempt": "1"})

    done = await executor.submit(vertex, action, True, T0, SETTLE, TIMEOUT)
    assert done.job is not None and (done.job.name == earlier.name) is adopted
    assert done.how == ("adopted-recreated" if adopted else "created")


async def test_cancel_all_skips_finished_and_cancelling_jobs_and_tolerates_a_race() -> None:
    vertex = FakeVertex()
    running = vertex.add("JOB_STATE_RUNNING", {"bij-uid": "u"})
    raced = vertex.add("JOB_STATE_PENDING", {"bij-uid": "u"})
    vertex.add("JOB_STATE_SUCCEEDED", {"bij-uid": "u"})
    vertex.add("JOB_STATE_CANCELLING", {"bij-uid": "u"})
    vertex.add("JOB_STATE_RUNNING", {"bij-uid": "someone-else"})

    class FinishedMeanwhile(FakeVertex):
        async def cancel(self, project: str, location: str, name: str) -> None:
            if name == raced.name:
                raise AdapterError("already finished", retryable=False, code=400, status="FAILED_PRECONDITION")
            await super().cancel(project, location, name)

    racy = FinishedMeanwhile()
    racy.jobs = vertex.jobs
    cancelled = await executor.cancel_all(racy, "p", "l", {"bij-uid": "u"})
    assert sorted(cancelled) == sorted([running.name, raced.name])
    assert racy.jobs[running.name][0].state == "JOB_STATE_CANCELLING"


def runtime_with(vertex: FakeVertex, decision: Decision | None = None) -> Runtime:
    """A runtime over the fake; with a decision, as the process that has just written its marker."""
    runtime = Runtime(Settings(retry_base=5.0, retry_max=60.0, create_settle=150), vertex)  # type: ignore[arg-type]
    runtime.clock = lambda: T0
    if decision is not None and isinstance(decision.actions[0], SubmitJob) and decision.actions[0].marker:
        runtime.fresh[RESOURCE.uid] = Marker(decision.actions[0].marker)
    return runtime


class FakeKube:
    """The status subresource as the API server keeps it: merge patches applied, each one recorded,
    a resourceVersion precondition checked (409 when the object moved on)."""

    def __init__(self, status: dict[str, Any] | None = None, version: str = "1") -> None:
        self.status: dict[str, Any] = dict(status or {})
        self.version = version
        self.patches: list[dict[str, Any]] = []

    async def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        if resource_version is not None and resource_version != self.version:
            raise StatusConflict(f"{resource_version} is not {self.version}")
        self.patches.append(patch)
        self.status = merge(self.status, patch)
        self.version = str(int(self.version) + 1)
        return {"metadata": {"resourceVersion": self.version}, "status": self.status}


def merge(target: Any, patch: Any) -> Any:
    """What the API server does with a JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge(merged.get(key), value)
    return merged


async def test_act_submits_and_records_the_job() -> None:
    vertex = FakeVertex()
    s, decision = submit_action()
    result = await executor.act(runtime_with(vertex, decision), decision, s, RESOURCE, TENANCY, Queue(), "")
    attempt = result.status.attempts[0]
    assert attempt.job_name in vertex.jobs and attempt.submitting is None
    assert vertex.calls.count("create") == 1


async def test_a_recoverable_error_backs_off_and_says_so() -> None:
    """The first failure is an Event and a backoff (its retry may clear it: no status write); from the
    second on, the status says so too, in a message that does not change with each retry."""
    vertex = FakeVertex()
    s, decision = submit_action()
    runtime = runtime_with(vertex, decision)
    messages = []
    for _ in range(2):
        vertex.fail_next["create"] = AdapterError("create: Vertex AI answered 429", retryable=True, code=429)
        runtime.backoff.get(RESOURCE.uid, Backoff()).next_attempt = 0
        result = await executor.act(runtime, decision, s, RESOURCE, TENANCY, Queue(), "")
        assert [e.reason for e in result.events] == ["RetryingSubmit"]
        messages.append(result.status.message or "")
        assert result.status.attempts[0].submitting is not None, "the marker stays"
        assert not runtime.may_try(RESOURCE.uid), "backing off"
    assert messages[0] == decision.status.message, "first failure: status unchanged"
    assert "retrying with backoff" in messages[1] and result.status.phase == "Pending"


@pytest.mark.parametrize(
    ("error", "reason", "code"),
    [
        (AdapterError("model not found", retryable=False, code=404), "UnknownModel", 404),
        (AdapterError("bad request", retryable=False, code=400), "InvalidArgument", 400),
        (AdapterError("gs://x missing", retryable=False, reason="InputNotFound"), "InputNotFound", 5),
    ],
)
async def test_a_terminal_error_fails_the_resource_with_its_reason(error: AdapterError, reason: str, code: int) -> None:
    vertex = FakeVertex()
    vertex.fail_next["create"] = error
    s, decision = submit_action()
    result = await executor.act(runtime_with(vertex, decision), decision, s, RESOURCE, TENANCY, Queue(), "")
    assert result.status.phase == "Failed"
    failed = next(c for c in result.status.conditions if c.type == "Failed")
    assert failed.reason == reason and result.status.attempts[0].error == api.JobError(code=code, message=error.message)


class FakeStorage:
    def __init__(self, files: dict[str, list[bytes]]) -> None:
        self.files = files

    def objects(self, uri: str) -> list[tuple[str, int]]:
        if uri not in self.files:
            raise AdapterError(f"{uri} does not exist", retryable=False, reason="InputNotFound")
        return [(uri, sum(len(line) + 1 for line in self.files[uri]))]

    def lines(self, uri: str) -> Iterator[bytes]:
        yield from self.files[uri]

    def chunks(self, uri: str) -> Iterator[bytes]:
        yield b"".join(line + b"\n" for line in self.files[uri])


class FakeTables:
    def __init__(self, datasets: dict[str, str], tables: dict[str, TableInfo]) -> None:
        self.datasets, self.tables = datasets, tables

    def dataset_location(self, uri: str, project: str, missing: str = "InputNotFound") -> str:
        dataset = ".".join(uri.split(".")[:2])
        if dataset not in self.datasets:
            raise AdapterError(f"BigQuery dataset {dataset} does not exist", retryable=False, reason=missing)
        return self.datasets[dataset]

    def table(self, uri: str, project: str) -> TableInfo:
        return self.tables[uri]

    def scan(self, uri: str, project: str, location: str) -> tuple[api.Usage, api.RowCounts]:
        raise AssertionError("not used here")


REQUEST = b'{"request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}'


def test_preflight_reports_the_first_bad_line_over_the_storage_adapter() -> None:
    storage = FakeStorage({"gs://b/in.jsonl": [REQUEST, b'{"request": {}}', REQUEST]})
    action = RunPreflight(("gs://b/in.jsonl",), "us-central1", "p")
    report, problems = checks.preflight(storage, FakeTables({}, {}), action)
    assert report.files == 1 and len(problems) == 1 and "gs://b/in.jsonl line 2" in problems[0]


def test_preflight_of_a_bigquery_input_reads_metadata_and_regions() -> None:
    table = TableInfo("europe-west4", [Column("request", "JSON"), Column("id", "STRING")], rows=10, bytes=100)
    tables = FakeTables({"bq://p.out": "us-central1"}, {"bq://p.in.t": table})
    action = RunPreflight(("bq://p.in.t",), "us-central1", "p", bigquery_output="bq://p.out")
    report, problems = checks.preflight(FakeStorage({}), tables, action)
    assert report.requests == 10
    assert len(problems) == 1 and "is in europe-west4, but the job runs in us-central1" in problems[0]


def test_a_missing_output_dataset_is_named_as_an_output_problem() -> None:
    table = TableInfo("us-central1", [Column("request", "JSON")], rows=1, bytes=1)
    action = RunPreflight(("bq://p.in.t",), "us-central1", "p", bigquery_output="bq://p.missing")
    with pytest.raises(AdapterError) as raised:
        checks.preflight(FakeStorage({}), FakeTables({}, {"bq://p.in.t": table}), action)
    assert raised.value.reason == "OutputNotFound" and not raised.value.retryable


def test_observe_reads_google_genai_batch_jobs_into_values() -> None:
    gcs_job = types.BatchJob(
        name="projects/1/locations/us-central1/batchPredictionJobs/7",
        state=types.JobState.JOB_STATE_FAILED,
        create_time=T0,
        error=types.JobError(code=3, message="bad line 4"),
        completion_stats=types.CompletionStats(successful_count=2, failed_count=1, incomplete_count=-1),
        output_info=types.BatchJobOutputInfo(gcs_output_directory="gs://b/out/prediction-model-x"),
    )
    seen = observe(gcs_job)
    assert (seen.state, seen.terminal, seen.output_location) == (
        "JOB_STATE_FAILED",
        True,
        "gs://b/out/prediction-model-x",
    )
    assert seen.error == api.JobError(code=3, message="bad line 4")
    assert seen.stats == api.CompletionStats(successful=2, failed=1, incomplete=0), "negative counts read as 0"

    bq_job = types.BatchJob(
        name="projects/1/locations/us-central1/batchPredictionJobs/8",
        state=types.JobState.JOB_STATE_SUCCEEDED,
        dest=types.BatchJobDestination(format="bigquery", bigquery_uri="bq://p.results"),
        output_info=types.BatchJobOutputInfo(bigquery_output_table="predictions_2026_11_29T10_00_00"),
    )
    assert observe(bq_job).output_location == "bq://p.results.predictions_2026_11_29T10_00_00"
    assert observe(types.BatchJob(name="n")).state == "JOB_STATE_UNSPECIFIED"


async def test_an_unexpected_error_ends_in_a_condition_and_a_backoff_never_a_lost_job() -> None:
    """A bug (here: an adapter answering with something no one expected) must show on the resource,
    back off, and leave the attempts as they were."""

    class Broken(FakeVertex):
        async def create(self, request: JobRequest, attempt: int) -> ObservedJob:
            raise RuntimeError("an answer no one expected")

    s, decision = submit_action()
    stored = decision.status.to_wire()
    body = kopf.Body({"metadata": {"name": "reviews", "namespace": "team-a"}, "spec": s.to_wire(), "status": stored})
    kube = FakeKube(stored)
    runtime = runtime_with(Broken(), decision)
    events = (await reconcile_resource(runtime, body, kube, RESOURCE, "", TENANCY, Queue())).events

    assert [(e.type, e.reason) for e in events] == [("Warning", "InternalError")]
    assert "RuntimeError: an answer no one expected" in events[0].message and "retrying" in events[0].message
    [written] = kube.patches
    assert set(written) == {"message", "conditions"}, "attempts are never rewritten after an unexpected error"
    ready = next(c for c in written["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InternalError")
    assert runtime.held(RESOURCE.uid), "no further turn until the backoff has passed"


async def test_a_stored_status_that_does_not_parse_is_reported_not_rewritten() -> None:
    s = spec()
    stored = {"phase": "Running", "attempts": [{"attempt": 1, "jobName": "projects/1/x", "fromTheFuture": True}]}
    body = kopf.Body({"metadata": {"name": "reviews", "namespace": "team-a"}, "spec": s.to_wire(), "status": stored})
    kube = FakeKube(stored)
    turn = await reconcile_resource(runtime_with(FakeVertex()), body, kube, RESOURCE, "", TENANCY, Queue())
    events = turn.events
    assert [e.reason for e in events] == ["InternalError"] and "fromTheFuture" in events[0].message
    assert all("attempts" not in patch for patch in kube.patches)


async def test_a_closed_endpoint_is_unreachable_and_fails_after_bounded_tries() -> None:
    """The real adapter against a loopback port nobody listens on: a connection error, nothing sent."""
    import socket

    from batch_inference_operator.adapters.vertex import Vertex

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(vertex_endpoint=f"http://127.0.0.1:{port}", vertex_timeout=5, unreachable_tries=3)
    vertex = Vertex(settings)
    _, decision = submit_action()
    action = decision.actions[0]
    assert isinstance(action, SubmitJob)
    with pytest.raises(AdapterError) as raised:
        await vertex.create(action.request, 1)
    assert raised.value.reason == "UnreachableEndpoint" and raised.value.retryable

    runtime = Runtime(settings, vertex)
    runtime.fresh[RESOURCE.uid] = Marker(action.marker)  # type: ignore[arg-type]
    s = spec()
    reasons = []
    for _ in range(3):
        if RESOURCE.uid in runtime.backoff:
            runtime.backoff[RESOURCE.uid].next_attempt = 0  # as if the backoff had passed
        decision = await executor.act(runtime, decision, s, RESOURCE, TENANCY, Queue(), "")
        reasons.append([e.reason for e in decision.events])
        if decision.status.phase == "Failed":
            break
        decision = decide(s, decision.status, None, RESOURCE, TENANCY, T0)
    assert reasons == [["RetryingSubmit"], ["RetryingSubmit"], ["UnreachableEndpoint"]]
    failed = next(c for c in decision.status.conditions if c.type == "Failed")
    assert failed.reason == "UnreachableEndpoint" and "3 tries" in failed.message


async def test_a_create_with_an_unknown_outcome_is_never_repeated_within_the_settle_window() -> None:
    """A create that times out may still land. The next turns look for it and wait; only after the settle
    window, with nothing found, is a new marker written, and only then a second create is sent."""
    vertex = FakeVertex()
    vertex.fail_next["create"] = AdapterError("create: Vertex AI did not answer in time", retryable=True)
    s, decision = submit_action()
    runtime = runtime_with(vertex, decision)

    first = await executor.act(runtime, decision, s, RESOURCE, TENANCY, Queue(), "")
    assert [e.reason for e in first.events] == ["CreateUncertain"]
    assert first.status.attempts[0].uncertain_creates == 1 and first.status.attempts[0].submitting is not None

    def again(status: api.BatchInferenceJobStatus, at: datetime.datetime) -> Decision:
        runtime.backoff.clear()
        runtime.clock = lambda: at
        return decide(s, status, None, RESOURCE, TENANCY, at)

    waiting = await executor.act(runtime, again(first.status, T0), s, RESOURCE, TENANCY, Queue(), "")
    assert vertex.calls.count("create") == 1, "no second create while the first may still land"
    assert "waiting until" in (waiting.status.message or "")

    marker = first.status.attempts[0].submitting
    assert marker is not None
    later = marker + SETTLE + datetime.timedelta(seconds=1)
    remarked = await executor.act(runtime, again(waiting.status, later), s, RESOURCE, TENANCY, Queue(), "")
    assert vertex.calls.count("create") == 1, "after the window a new marker is written first"
    assert remarked.status.attempts[0].submitting != marker

    remark = remarked.status.attempts[0].submitting
    assert remark is not None
    runtime.fresh[RESOURCE.uid] = Marker(remark)  # as the lifecycle notes after the write
    created = await executor.act(runtime, again(remarked.status, later), s, RESOURCE, TENANCY, Queue(), "")
    assert vertex.calls.count("create") == 2 and created.status.attempts[0].job_name in vertex.jobs


async def test_a_late_create_is_adopted_and_a_second_job_is_cancelled() -> None:
    vertex = FakeVertex()
    s, decision = submit_action()
    action = decision.actions[0]
    assert isinstance(action, SubmitJob)
    late = vertex.add("JOB_STATE_PENDING", {**action.request.labels})
    second = vertex.add("JOB_STATE_PENDING", {**action.request.labels})
    result = await executor.act(runtime_with(vertex), decision, s, RESOURCE, TENANCY, Queue(), "")
    assert result.status.attempts[0].job_name == late.name, "the first job of the attempt is kept"
    assert vertex.jobs[second.name][0].state == "JOB_STATE_CANCELLING"
    assert "DuplicateJobCancelled" in [e.reason for e in result.events]
    assert "create" not in vertex.calls


async def test_a_spec_that_no_longer_validates_never_abandons_a_running_job() -> None:
    """Validation tightened by an upgrade must not fail a resource whose paid job runs: it is reported and
    the job stays followed (deleting the resource still cancels it)."""
    s = spec()
    job = "projects/1/locations/us-central1/batchPredictionJobs/9"
    stored = api.BatchInferenceJobStatus(
        phase="Running",
        project="demo-project",
        location="us-central1",
        attempts=[api.Attempt(attempt=1, job_name=job, state="JOB_STATE_RUNNING")],
    ).to_wire()
    manifest_spec = {**s.to_wire(), "model": "Gemini 2.5 Flash"}
    body = kopf.Body({"metadata": {"name": "reviews", "namespace": "team-a"}, "spec": manifest_spec, "status": stored})
    kube = FakeKube(stored)
    runtime = runtime_with(FakeVertex())
    events = (await reconcile_resource(runtime, body, kube, RESOURCE, "", TENANCY, Queue())).events
    assert [(e.type, e.reason) for e in events] == [("Warning", "InvalidSpec")]
    [written] = kube.patches
    assert "phase" not in written and "attempts" not in written, "not failed, attempts untouched"
    assert runtime.tracked[RESOURCE.uid].job_name == job, "the poller keeps following the job"


async def test_a_fresh_marker_goes_stale_so_a_late_create_keeps_its_settle_window() -> None:
    """A create sent long after its marker (lookups failing with 429s meanwhile, or a day-long suspend)
    would leave a crash right after it less than the settle window: the marker is renewed first, and
    at once, since nothing was sent for it."""
    vertex = FakeVertex()
    _, decision = submit_action()
    action = decision.actions[0]
    assert isinstance(action, SubmitJob) and action.marker is not None
    late = action.marker + SETTLE - TIMEOUT
    done = await executor.submit(vertex, action, True, late, SETTLE, TIMEOUT)
    assert done.job is None and done.how == "remark" and "create" not in vertex.calls


async def test_a_refused_cancel_is_retried_never_read_as_a_failed_spec() -> None:
    vertex = FakeVertex()
    vertex.fail_next["cancel"] = AdapterError("cancel: 404 NOT_FOUND", retryable=False, code=404)
    s = spec(suspend=True)
    job = vertex.add("JOB_STATE_RUNNING", {})
    status = api.BatchInferenceJobStatus(
        phase="Running",
        project="demo-project",
        location="us-central1",
        attempts=[api.Attempt(attempt=1, job_name=job.name, state="JOB_STATE_RUNNING")],
    )
    decision = decide(s, status, job, RESOURCE, TENANCY, T0)
    result = await executor.act(runtime_with(vertex), decision, s, RESOURCE, TENANCY, Queue(), "")
    assert result.status.phase != "Failed" and [e.reason for e in result.events][-1] == "Retrying"
    again = decide(s, result.status, job, RESOURCE, TENANCY, T0)
    assert any(isinstance(a, CancelJob) for a in again.actions), "the cancel is sent again while the job runs"


def deleting(status: api.BatchInferenceJobStatus) -> kopf.Body:
    meta = {"name": "reviews", "namespace": "team-a", "deletionTimestamp": "2026-11-29T10:00:00Z"}
    return kopf.Body({"metadata": meta, "spec": spec().to_wire(), "status": status.to_wire()})


async def test_deleting_while_a_create_may_land_waits_for_it() -> None:
    marked = api.BatchInferenceJobStatus(
        phase="Pending",
        project="demo-project",
        location="us-central1",
        attempts=[api.Attempt(attempt=1, submitting=T0, uncertain_creates=1)],
    )
    runtime = runtime_with(FakeVertex())
    done = await release_resource(runtime, deleting(marked), RESOURCE.uid)
    assert done.again_in is not None and [e.reason for e in done.events] == ["AwaitingCreate"]
    assert RESOURCE.uid not in runtime.tracked


async def test_deleting_cancels_an_adopted_job_of_an_earlier_resource_too() -> None:
    vertex = FakeVertex()
    adopted = vertex.add("JOB_STATE_RUNNING", {"bij-uid": "an-earlier-uid", "bij-attempt": "1"})
    status = api.BatchInferenceJobStatus(
        phase="Running",
        project="demo-project",
        location="us-central1",
        attempts=[api.Attempt(attempt=1, job_name=adopted.name, state="JOB_STATE_RUNNING")],
    )
    done = await release_resource(runtime_with(vertex), deleting(status), RESOURCE.uid)
    assert vertex.jobs[adopted.name][0].state == "JOB_STATE_CANCELLING" and done.again_in is None
    assert [e.reason for e in done.events] == ["CancelledOnDelete"] and adopted.name in done.events[0].message


class BucketStorage(FakeStorage):
    def __init__(self, files: dict[str, list[bytes]], buckets: dict[str, str | None]) -> None:
        super().__init__(files)
        self.buckets = buckets

    def objects(self, uri: str) -> list[tuple[str, int]]:
        if uri.endswith("*.jsonl"):
            folder = uri.removesuffix("*.jsonl")
            return sorted((name, 1) for name in self.files if name.startswith(folder))
        return super().objects(uri)

    def bucket_location(self, uri: str) -> str | None:
        bucket = uri.removeprefix("gs://").split("/")[0]
        if bucket not in self.buckets:
            raise AdapterError(f"the bucket {bucket} does not exist", retryable=False, reason="OutputNotFound")
        return self.buckets[bucket]


def test_preflight_refuses_a_file_two_uris_name_and_an_output_bucket_elsewhere() -> None:
    storage = BucketStorage(
        {"gs://b/in/a.jsonl": [REQUEST], "gs://b/in/b.jsonl": [REQUEST.replace(b"hi", b"ho")]},
        {"out": "EUROPE-WEST4", "here": None},
    )
    action = RunPreflight(("gs://b/in/*.jsonl", "gs://b/in/a.jsonl"), "us-central1", "p", gcs_output="gs://out/x/")
    report, problems = checks.preflight(storage, FakeTables({}, {}), action)
    assert report.files == 2 and len(problems) == 2
    assert "the output bucket of gs://out/x/ is in EUROPE-WEST4, but the job runs in us-central1" in problems[0]
    assert "gs://b/in/a.jsonl is named by gs://b/in/*.jsonl and again by gs://b/in/a.jsonl" in problems[1]
    # A bucket whose location the operator may not read (no storage.buckets.get) exists: nothing is refused.
    fine = RunPreflight(("gs://b/in/b.jsonl",), "us-central1", "p", gcs_output="gs://here/x/")
    assert checks.preflight(storage, FakeTables({}, {}), fine)[1] == []
    with pytest.raises(AdapterError) as raised:
        checks.preflight(
            storage, FakeTables({}, {}), RunPreflight(fine.uris, "us-central1", "p", gcs_output="gs://gone/")
        )
    assert raised.value.reason == "OutputNotFound"


async def test_a_403_says_which_role_to_grant_and_gives_up_after_the_bounded_tries() -> None:
    denied = (
        "create: Vertex AI answered 403 PERMISSION_DENIED: Permission 'aiplatform.batchPredictionJobs.create' denied"
    )
    vertex = FakeVertex()
    s, decision = submit_action()
    runtime = runtime_with(vertex, decision)
    runtime.settings = Settings(retry_base=5.0, retry_max=60.0, create_settle=150, permission_tries=2)
    vertex.fail_next["create"] = AdapterError(denied, retryable=True, code=403)
    first = await executor.act(runtime, decision, s, RESOURCE, TENANCY, Queue(), "")
    ready = next(c for c in first.status.conditions if c.type == "Ready")
    assert ready.reason == "PermissionDenied" and "grant roles/aiplatform.user on the project" in ready.message
    assert "(try 1 of 2)" in ready.message and first.status.phase == "Pending"
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "PermissionDenied")]
    runtime.backoff[RESOURCE.uid].next_attempt = 0  # the backoff has passed
    vertex.fail_next["create"] = AdapterError(denied, retryable=True, code=403)
    second = await executor.act(runtime, Decision(first.status, decision.actions), s, RESOURCE, TENANCY, Queue(), "")
    assert second.status.phase == "Failed", "not Pending forever"
    failed = next(c for c in second.status.conditions if c.type == "Failed")
    assert failed.reason == "PermissionDenied" and "batchinference.dev/rerun" in failed.message
    assert second.status.attempts[0].error == api.JobError(code=7, message=failed.message)
    assert vertex.jobs == {}, "no job was made"


def body_of(status: dict[str, Any], **spec_changes: Any) -> kopf.Body:
    meta = {"name": "reviews", "namespace": "team-a", "uid": RESOURCE.uid, "resourceVersion": "1"}
    return kopf.Body({"metadata": meta, "spec": spec(**spec_changes).to_wire(), "status": status})


async def test_one_turn_stores_the_marker_then_creates_with_one_lookup_and_no_get() -> None:
    """Before, the marker was written in one turn and the create sent on the next timer tick, after two
    lookups, and followed by a GET. Now: marker stored (and answered) first, then in the same turn one
    lookup (a re-created resource's job) and the create; the job's name is the turn's second write."""
    vertex, kube = FakeVertex(), FakeKube()
    runtime = runtime_with(vertex)
    turn = await reconcile_resource(runtime, body_of({}), kube, RESOURCE, "", TENANCY, Queue())
    assert vertex.calls == ["list", "create"]
    marker, recorded = kube.patches
    assert marker["attempts"][0]["submitting"] and "jobName" not in marker["attempts"][0], "the marker comes first"
    assert recorded["attempts"][0]["jobName"] in vertex.jobs
    assert [e.reason for e in turn.events] == ["Accepted", "Submitted"]
    assert runtime.tracked[RESOURCE.uid].job_name in vertex.jobs


async def test_a_refused_create_keeps_its_fresh_marker_and_the_retry_needs_no_lookup() -> None:
    """A 429 made no job: the marker stays this process's own, so the retry creates at once; the retry
    changes neither the status (one message per problem) nor adds a second Warning reason."""
    vertex, kube = FakeVertex(), FakeKube()
    vertex.fail_next["create"] = AdapterError("create: Vertex AI answered 429", retryable=True, code=429)
    runtime = runtime_with(vertex)
    first = await reconcile_resource(runtime, body_of({}), kube, RESOURCE, "", TENANCY, Queue())
    assert [e.reason for e in first.events] == ["Accepted", "RetryingSubmit"] and first.requeue_after
    writes = len(kube.patches)
    runtime.backoff[RESOURCE.uid].next_attempt = 0  # as if the backoff had passed
    vertex.calls.clear()
    second = await reconcile_resource(runtime, body_of(kube.status), kube, RESOURCE, "", TENANCY, Queue())
    assert vertex.calls == ["list", "create"], "the re-created resource lookup only: no job of this attempt can exist"
    assert kube.status["attempts"][0]["jobName"] in vertex.jobs and len(kube.patches) == writes + 1
    assert [e.reason for e in second.events] == ["Submitted"]


async def test_the_same_retried_problem_writes_status_once() -> None:
    vertex, kube = FakeVertex(), FakeKube()
    runtime = runtime_with(vertex)
    for _ in range(4):
        vertex.fail_next["create"] = AdapterError("create: Vertex AI answered 429", retryable=True, code=429)
        runtime.backoff.get(RESOURCE.uid, Backoff()).next_attempt = 0  # as if the backoff had passed
        await reconcile_resource(runtime, body_of(kube.status), kube, RESOURCE, "", TENANCY, Queue())
    assert vertex.calls.count("create") == 4
    # The marker; nothing for the first failure (its retry may clear it); the message at the second;
    # nothing more for the same problem.
    assert len(kube.patches) == 2, kube.patches


async def test_a_burst_beyond_the_create_pace_waits_in_queued_without_a_marker() -> None:
    vertex, kube = FakeVertex(), FakeKube()
    runtime = runtime_with(vertex)
    runtime.limiter = CreateLimiter(rate=0.4, concurrency=0, burst=1)  # the next slot in 2.5 s: beyond patience
    await reconcile_resource(runtime, body_of({}), kube, RESOURCE, "", TENANCY, Queue())
    assert vertex.calls.count("create") == 1
    other, other_kube = Resource("team-a", "second", "uid-2"), FakeKube()
    body = kopf.Body({"metadata": {"name": "second", "namespace": "team-a"}, "spec": spec().to_wire(), "status": {}})
    paced = await reconcile_resource(runtime, body, other_kube, other, "", TENANCY, Queue())
    assert vertex.calls.count("create") == 1, "no slot: no create"
    assert other_kube.status["phase"] == "Queued" and not other_kube.status.get("attempts"), "no marker while waiting"
    ready = next(c for c in other_kube.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "CreatePaced" and paced.requeue_after and 1.0 < paced.requeue_after <= 2.5
    assert [e.reason for e in paced.events] == ["Queued"]


async def test_a_slot_that_comes_within_the_patience_is_waited_for_in_the_turn_without_queued() -> None:
    vertex, kube = FakeVertex(), FakeKube()
    runtime = runtime_with(vertex)
    runtime.limiter = CreateLimiter(rate=5.0, concurrency=0, burst=1)  # the next slot in 0.2 s
    await reconcile_resource(runtime, body_of({}), kube, RESOURCE, "", TENANCY, Queue())
    other, other_kube = Resource("team-a", "second", "uid-2"), FakeKube()
    body = kopf.Body({"metadata": {"name": "second", "namespace": "team-a"}, "spec": spec().to_wire(), "status": {}})
    await reconcile_resource(runtime, body, other_kube, other, "", TENANCY, Queue())
    assert vertex.calls.count("create") == 2
    assert all(patch.get("phase") != "Queued" for patch in other_kube.patches), other_kube.patches


def test_create_slots_go_first_come_first_served_and_each_waiter_is_told_its_own_turn() -> None:
    limiter = CreateLimiter(rate=10.0, concurrency=0, burst=2)
    key = ("p", "l")
    assert limiter.acquire(key, 0.0, "a") == 0 and limiter.acquire(key, 0.0, "b") == 0, "the burst"
    waits = [limiter.acquire(key, 0.0, uid) for uid in ("c", "d", "e")]
    assert waits == pytest.approx([0.1, 0.2, 0.3]), "by place in line, not all at 1/rate"
    assert limiter.acquire(key, 0.15, "e") > 0 and limiter.acquire(key, 0.15, "d") > 0, "one token: c's"
    assert limiter.acquire(key, 0.15, "c") == 0
    assert limiter.acquire(key, 0.2, "d") == 0, "d is first in line now"
    limiter.forget("e")
    assert limiter.acquire(key, 0.3, "f") == 0, "e was deleted: it holds no one up"
    assert limiter.acquire(key, 0.3, "g") > 0
    assert limiter.acquire(key, 100.0, "h") == 0, "g never came back: dropped from the line"


def test_the_line_is_swept_for_waiters_gone_at_most_once_a_second_and_they_hold_no_one_up_meanwhile() -> None:
    limiter = CreateLimiter(rate=10.0, concurrency=0, burst=1)
    key = ("p", "l")
    line = lambda: list(limiter.buckets[key].waiting)  # noqa: E731
    assert limiter.acquire(key, 0.0, "a") == 0
    assert limiter.acquire(key, 0.0, "gone") == pytest.approx(0.1), "told to come back at 0.1; never does"
    assert limiter.acquire(key, 10.05, "b") == 0, "gone is late: it holds b up no longer"
    assert limiter.acquire(key, 10.05, "c") > 0
    assert line() == ["gone", "c"], "swept at 10.05, when gone was not yet 10 s overdue"
    assert limiter.acquire(key, 10.5, "c") == 0, "gone, 10.4 s overdue, still in line until the next sweep"
    assert line() == ["gone"]
    assert limiter.acquire(key, 11.05, "d") == 0 and line() == [], "the next sweep, a second later, drops it"


def test_concurrency_waiters_keep_their_order() -> None:
    limiter = CreateLimiter(rate=0, concurrency=1)
    key = ("p", "l")
    assert limiter.acquire(key, 0.0, "a") == 0
    assert 0 < limiter.acquire(key, 0.0, "b") < limiter.acquire(key, 0.0, "c")
    limiter.release(key)
    assert limiter.acquire(key, 0.01, "c") > 0, "b is ahead"
    assert limiter.acquire(key, 0.01, "b") == 0


class ListingVertex(FakeVertex):
    """Lists live jobs only, as the poller's state filter asks Vertex to."""

    async def list_managed(self, project: str, location: str, since: datetime.datetime | None) -> list[ObservedJob]:
        self.calls.append("list")
        return [job for job, _ in self.jobs.values() if not job.terminal]


async def test_a_poll_round_lists_live_jobs_reads_a_finished_one_once_and_wakes_only_what_moved() -> None:
    from batch_inference_operator.controller import poller
    from batch_inference_operator.controller.runtime import Tracked

    vertex = ListingVertex()
    runtime = runtime_with(vertex)
    queued = vertex.add("JOB_STATE_QUEUED", {})
    finished = vertex.add("JOB_STATE_RUNNING", {})
    for uid, job in (("a", queued), ("b", finished)):
        runtime.tracked[uid] = Tracked("demo-project", "us-central1", job.name, T0)
        runtime.wakers[uid] = asyncio.Event()
    assert await poller.poll_round(runtime) and vertex.calls == ["list"]
    assert runtime.wakers["a"].is_set() and runtime.wakers["b"].is_set(), "first sight of both jobs"
    for waker in runtime.wakers.values():
        waker.clear()

    vertex.jobs[finished.name] = (ObservedJob(finished.name, "JOB_STATE_SUCCEEDED", T0), {})
    vertex.calls.clear()
    assert await poller.poll_round(runtime)
    assert vertex.calls == ["list", "get"], "one LIST of live jobs, one GET for the job that left it"
    assert runtime.observations[finished.name].state == "JOB_STATE_SUCCEEDED"
    assert runtime.wakers["b"].is_set() and not runtime.wakers["a"].is_set(), "only the resource whose job moved"

    vertex.calls.clear()
    assert not await poller.poll_round(runtime)
    assert vertex.calls == ["list"], "a job seen finished is not read again while its resource records it"

    del runtime.tracked["b"]
    assert not await poller.poll_round(runtime), "nothing moved"
    assert poller.next_interval(runtime, moved=False) == runtime.settings.queued_poll_interval
    assert poller.next_interval(runtime, moved=True) == runtime.settings.poll_interval
