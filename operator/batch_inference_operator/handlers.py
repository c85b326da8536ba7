"""kopf registration: thin glue between Kubernetes, `reconcile.decide()` and the Vertex adapter.

- A per-resource timer runs `decide()` against the latest observation of its Vertex job, performs
  the actions it returns, writes status only when it changed, and posts an Event per transition.
- One poller task per operator makes one label-filtered LIST per (project, location) per round and
  stores what it sees; the timers read that, so Vertex calls do not grow with the resource count.
- The delete handler cancels or abandons the Vertex job and gives up after a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import api, metrics
from . import usage as usage_report
from .bigquery import BigQuery
from .preflight import Preflight, bigquery_input_problems, region_problem, rejection
from .reconcile import (
    LABEL_UID,
    CancelJob,
    Decision,
    Defaults,
    Event,
    ObservedJob,
    Peer,
    Queue,
    Resource,
    RunPreflight,
    ScanOutput,
    SubmitJob,
    decide,
    record_failure,
    record_no_output,
    record_preflight,
    record_retry,
    record_scan,
    record_submission,
)
from .settings import Settings
from .storage import Storage, StorageError
from .vertex import Vertex, VertexError

GVR = (api.GROUP, api.VERSION, api.PLURAL)
FINALIZER = f"{api.GROUP}/finalizer"
PROJECT_ANNOTATION = f"{api.GROUP}/project"
LOCATION_ANNOTATION = f"{api.GROUP}/location"
GCS_POLICY_ANNOTATION = f"{api.GROUP}/allowed-gcs-prefixes"
BQ_POLICY_ANNOTATION = f"{api.GROUP}/allowed-bigquery-datasets"
SETTINGS = Settings.from_env()  # decorators below need the intervals at import time

log = logging.getLogger("batch_inference_operator")


@dataclass
class Tracked:
    """A resource whose Vertex job the poller follows."""

    project: str
    location: str
    job_name: str
    create_time: datetime.datetime | None


@dataclass
class Backoff:
    failures: int = 0
    next_attempt: float = 0.0


@dataclass
class Runtime:
    settings: Settings
    vertex: Vertex
    storage: Storage = field(default_factory=Storage)
    bigquery: BigQuery = field(default_factory=BigQuery)
    prices: dict[str, usage_report.Price] = field(default_factory=lambda: dict(usage_report.DEFAULT_PRICES))
    observations: dict[str, ObservedJob] = field(default_factory=dict)
    tracked: dict[str, Tracked] = field(default_factory=dict)  # by resource uid
    # Read-your-writes: after a status write, the resourceVersion it was based on, and when. A timer run
    # on that same version would decide from a status older than its own write (a second marker, a
    # second lookup), so it waits for the write to come back, at most `write_grace` seconds.
    awaiting: dict[str, tuple[str, float]] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)  # by resource uid
    phases: dict[str, str | None] = field(default_factory=dict)  # by resource uid, for the jobs gauge
    poller: asyncio.Task[None] | None = None

    def delay_for(self, uid: str) -> float:
        entry = self.backoff.setdefault(uid, Backoff())
        entry.failures += 1
        delay = min(self.settings.retry_max, self.settings.retry_base * 2 ** (entry.failures - 1))
        delay *= 0.8 + 0.4 * random.random()  # jitter, so many resources do not retry in step
        entry.next_attempt = asyncio.get_running_loop().time() + delay
        return delay

    def forget(self, uid: str) -> None:
        self.tracked.pop(uid, None)
        self.backoff.pop(uid, None)
        self.awaiting.pop(uid, None)

    def stale(self, uid: str, resource_version: str | None) -> bool:
        """True while the stored status may still predate this process's last write to it."""
        pending = self.awaiting.get(uid)
        if pending is None:
            return False
        loop_time = asyncio.get_running_loop().time()
        if pending[0] == resource_version and loop_time - pending[1] < self.write_grace:
            return True
        del self.awaiting[uid]
        return False

    @property
    def write_grace(self) -> float:
        return max(10.0, 5 * self.settings.reconcile_interval)

    def may_try(self, uid: str) -> bool:
        entry = self.backoff.get(uid)
        return entry is None or asyncio.get_running_loop().time() >= entry.next_attempt


class _QuietTimers(logging.Filter):
    """kopf logs every successful timer run at INFO; that is noise for a timer that usually does nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO
            and str(record.msg).startswith("Timer ")
            and str(record.msg).endswith(" succeeded.")
        )


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# ---------------------------------------------------------------- start-up and shutdown


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=api.GROUP)
    settings.posting.level = logging.WARNING  # our Events are posted explicitly, one per transition
    settings.watching.server_timeout = 300  # re-establish watches regularly (stale streams, kopf #1276)
    settings.watching.client_timeout = 330
    logging.getLogger("kopf.objects").addFilter(_QuietTimers())
    runtime = Runtime(SETTINGS, Vertex(SETTINGS))
    if SETTINGS.prices_json:
        runtime.prices.update(usage_report.parse_prices(SETTINGS.prices_json))
    runtime.poller = asyncio.create_task(poll_forever(runtime), name="vertex-poller")
    metrics.serve(SETTINGS.metrics_port)
    memo.runtime = runtime


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime and runtime.poller:
        runtime.poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.poller


@kopf.index("namespaces")
def namespace_defaults(name: str, annotations: kopf.Annotations, **_: Any) -> dict[str, tuple[Any, ...]]:
    return {
        name: (
            annotations.get(PROJECT_ANNOTATION),
            annotations.get(LOCATION_ANNOTATION),
            _listed(annotations.get(GCS_POLICY_ANNOTATION)),
            _listed(annotations.get(BQ_POLICY_ANNOTATION)),
        )
    }


def _listed(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated annotation; absent means no restriction, empty means nothing is allowed."""
    return None if value is None else tuple(item.strip() for item in value.split(",") if item.strip())


@kopf.index(*GVR)
def peers(
    uid: str, namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, Peer]:
    """Every BatchInferenceJob, for the concurrency queue (one watch, no extra API calls)."""
    project = status.get("project") or spec.get("project")
    location = status.get("location") or spec.get("location")
    created = meta.get("creationTimestamp") or ""
    attempted = bool(status.get("attempts"))
    return {"all": Peer(uid, created, f"{namespace}/{name}", project, location, status.get("phase"), attempted)}


def _queue(index: kopf.Index[str, Peer] | None) -> Queue:
    if SETTINGS.max_concurrent_jobs <= 0 or index is None or "all" not in index:
        return Queue(SETTINGS.max_concurrent_jobs)
    return Queue(SETTINGS.max_concurrent_jobs, tuple(index["all"]))


# ---------------------------------------------------------------- polling


async def poll_forever(runtime: Runtime) -> None:
    while True:
        try:
            with metrics.POLL_ROUND.time():
                await poll_round(runtime)
        except Exception:  # a bad round must not stop polling; the next one tries again
            metrics.RECONCILE_ERRORS.labels("PollFailed").inc()
            log.exception("polling Vertex failed")
        await asyncio.sleep(runtime.settings.poll_interval)


async def poll_round(runtime: Runtime) -> None:
    """One LIST per (project, location) with followed jobs, limited to jobs created since the oldest one."""
    groups: dict[tuple[str, str], list[Tracked]] = {}
    for tracked in list(runtime.tracked.values()):
        groups.setdefault((tracked.project, tracked.location), []).append(tracked)
    for (project, location), members in groups.items():
        times = [m.create_time for m in members]
        since = None if None in times else min(t for t in times if t is not None)
        try:
            jobs = await runtime.vertex.list_managed(project, location, since)
        except VertexError as error:
            log.warning("polling %s/%s failed: %s", project, location, error.message)
            continue
        for job in jobs:
            runtime.observations[job.name] = job
    followed = {tracked.job_name for tracked in runtime.tracked.values()}
    for name in list(runtime.observations):
        if name not in followed:
            del runtime.observations[name]


# ---------------------------------------------------------------- reconciling one resource


def _defaults(namespace: str, index: kopf.Index[str, tuple[Any, ...]] | None) -> Defaults | None:
    """Defaults and data policy for a namespace; None while the namespace is not indexed yet (a resource
    created right after its Namespace), so nothing is decided from a partial view."""
    if index is not None and namespace not in index and len(index) > 0:
        return None
    entries = list(index[namespace]) if index is not None and namespace in index else []
    project, location, gcs, bigquery = entries[-1] if entries else (None, None, None, None)
    return Defaults(project or SETTINGS.default_project, location or SETTINGS.default_location, gcs, bigquery)


def _post(body: kopf.Body, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) turning `old` into `new`: nested objects merge on the server, so
    a key that disappears must be sent as null, or it survives and the status never matches."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    diff: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        diff[key] = None
    for key, value in new.items():
        if key not in old:
            diff[key] = value
        elif old[key] != value:
            diff[key] = merge_patch(old[key], value)
    return diff


def _write_status(patch: kopf.Patch, old: dict[str, Any], new: api.BatchInferenceJobStatus) -> bool:
    """Patch only what changed; False when nothing did (no write at all)."""
    diff = merge_patch({k: v for k, v in old.items() if k != "kopf"}, new.to_wire())
    for key, value in diff.items():
        patch.status[key] = value
    return bool(diff)


async def _act(
    runtime: Runtime,
    decision: Decision,
    spec: api.BatchInferenceJobSpec,
    resource: Resource,
    defaults: Defaults,
    queue: Queue,
    created: str,
) -> Decision:
    """Run the decision's action and fold its outcome back into a new decision (at most a few rounds)."""
    events: list[Event] = list(decision.events)
    for _ in range(4):
        if not decision.actions:
            break
        action = decision.actions[0]
        if not isinstance(action, CancelJob) and not runtime.may_try(resource.uid):
            return Decision(decision.status, events=events)
        try:
            status, observed, extra = await _perform(runtime, action, decision.status, spec)
        except (VertexError, StorageError) as error:
            failed = _after_error(runtime, error, decision.status, resource, action)
            metrics.RECONCILE_ERRORS.labels(failed.events[0].reason).inc()
            return Decision(failed.status, events=events + failed.events)
        runtime.backoff.pop(resource.uid, None)
        events += extra
        if isinstance(action, CancelJob):
            return Decision(decision.status, events=events)
        decision = decide(spec, status, observed, resource, defaults, now(), queue, created)
        events += decision.events
    return Decision(decision.status, decision.actions, events)


def _after_error(
    runtime: Runtime,
    error: VertexError | StorageError,
    status: api.BatchInferenceJobStatus,
    resource: Resource,
    action: object,
) -> Decision:
    """A recoverable error: back off and say so; any other: the resource fails with the cause."""
    if error.retryable:
        delay = runtime.delay_for(resource.uid)
        message = f"{error.message}; retrying in {delay:.0f}s"
        reason = "RetryingSubmit" if isinstance(action, SubmitJob) else "Retrying"
        return Decision(
            record_retry(status, message, now(), resource.generation), events=[Event("Warning", reason, message)]
        )
    if isinstance(error, _InputRejected):
        reason, code = "InvalidInput", 3
    elif isinstance(error, StorageError):
        reason, code = error.reason, 5
    else:
        code = error.code or 0
        reason = "UnknownModel" if code == 404 else "InvalidArgument" if code == 400 else "SubmitFailed"
    return record_failure(status, reason, code, error.message, now(), resource.generation)


async def _perform(
    runtime: Runtime, action: object, status: api.BatchInferenceJobStatus, spec: api.BatchInferenceJobSpec
) -> tuple[api.BatchInferenceJobStatus, ObservedJob | None, list[Event]]:
    """One action against the outside world; returns the status to decide from next."""
    if isinstance(action, SubmitJob):
        job, how = await runtime.vertex.submit(action)
        runtime.observations[job.name] = job
        metrics.SUBMISSIONS.labels(how).inc()
        events = []
        if how != "created":
            events.append(
                Event("Normal", "Adopted", f"adopted the existing Vertex job {job.name} instead of creating another")
            )
        return record_submission(status, action.attempt, job, adopted=how != "created"), job, events
    if isinstance(action, RunPreflight):
        report, problems = await asyncio.to_thread(_preflight, runtime, action)
        if problems:
            raise _InputRejected(rejection(problems))
        where = f"the table {action.uris[0]}" if action.uris[0].startswith("bq://") else f"{report.files} file(s)"
        message = f"input checked: {report.requests} requests in {where}"
        if report.shared_prefix_requests is not None:
            message += f", {report.shared_prefix_requests} sharing a long prompt prefix"
        return record_preflight(status, report), None, [Event("Normal", "PreflightPassed", message)]
    if isinstance(action, ScanOutput):
        try:
            found, rows = await asyncio.to_thread(_scan, runtime, action.output_location, status)
        except StorageError as error:
            if error.retryable:
                raise
            # The job stopped before writing anything (its input was rejected, say): nothing to resume from.
            return record_no_output(status, action.attempt), None, []
        found.estimated_cost_usd = usage_report.estimate_cost(found, spec.model, runtime.prices)
        return record_scan(status, action.attempt, found, rows), None, []
    if isinstance(action, CancelJob):
        try:
            await runtime.vertex.cancel(action.project, action.location, action.job_name)
        except VertexError as error:
            if error.status != "FAILED_PRECONDITION":  # it had finished already
                raise
        return status, None, [Event("Normal", "Cancelling", f"cancelling Vertex job {action.job_name}")]
    raise TypeError(f"unknown action {action!r}")


class _InputRejected(StorageError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _preflight(runtime: Runtime, action: RunPreflight) -> tuple[api.PreflightReport, list[str]]:
    """The input's report and the problems found (none: submit)."""
    problems: list[str] = []
    if action.bigquery_output:
        try:
            location = runtime.bigquery.dataset_location(action.bigquery_output, action.project)
        except StorageError as error:
            error.reason = "OutputNotFound"
            raise
        problem = region_problem("output dataset", action.bigquery_output, location, action.location)
        problems += [problem] if problem else []
    if action.uris[0].startswith("bq://"):
        uri = action.uris[0]
        table = runtime.bigquery.table(uri, action.project)
        problem = region_problem("input table", uri, table.location, action.location)
        problems += [problem] if problem else []
        problems += bigquery_input_problems(uri, table.columns, table.rows)
        return api.PreflightReport(requests=table.rows or 0, bytes=table.bytes), problems
    check = Preflight()
    for uri in action.uris:
        for path, size in runtime.storage.objects(uri):
            check.check_file(path, size, runtime.storage.lines(path))
            if check.failed:
                return check.report(), problems + [str(v) for v in check.violations]
    return check.report(), problems


def _scan(
    runtime: Runtime, output_location: str, status: api.BatchInferenceJobStatus
) -> tuple[api.Usage, api.RowCounts]:
    """An attempt's output: a BigQuery table is summed by a query, a Cloud Storage file is streamed."""
    if output_location.startswith("bq://"):
        return runtime.bigquery.scan(output_location, status.project or "", status.location or "")
    return usage_report.scan(runtime.storage.lines(f"{output_location}/predictions.jsonl"))


@kopf.timer(*GVR, interval=SETTINGS.reconcile_interval, initial_delay=0)
async def reconcile(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    uid: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace_defaults: kopf.Index[str, tuple[Any, ...]],
    peers: kopf.Index[str, Peer],
    **_: Any,
) -> None:
    runtime: Runtime = memo.runtime
    if runtime.stale(uid, meta.get("resourceVersion")):
        return
    old = dict(status)
    current = api.BatchInferenceJobStatus.model_validate({k: v for k, v in old.items() if k != "kopf"})
    resource = Resource(namespace, name, uid, meta.get("generation") or 1)
    defaults = _defaults(namespace, namespace_defaults)
    if defaults is None:
        return
    try:
        parsed = api.parse_spec(dict(spec))
    except ValueError as error:
        decision = record_failure(current, "InvalidSpec", 0, str(error), now(), resource.generation)
        if current.phase != "Failed":
            _write_status(patch, old, decision.status)
            _post(body, decision.events)
        return
    job_name = current.attempts[-1].job_name if current.attempts else None
    queue, created = _queue(peers), meta.get("creationTimestamp") or ""
    decision = decide(
        parsed, current, runtime.observations.get(job_name or ""), resource, defaults, now(), queue, created
    )
    decision = await _act(runtime, decision, parsed, resource, defaults, queue, created)
    if _write_status(patch, old, decision.status):
        runtime.awaiting[uid] = (meta.get("resourceVersion"), asyncio.get_running_loop().time())
    _post(body, decision.events)
    _track(runtime, uid, decision.status)
    _count(runtime, uid, namespace, parsed, current, decision)


def _count(
    runtime: Runtime,
    uid: str,
    namespace: str,
    spec: api.BatchInferenceJobSpec,
    before: api.BatchInferenceJobStatus,
    decision: Decision,
) -> None:
    after = decision.status
    metrics.move(runtime.phases.get(uid), after.phase)
    runtime.phases[uid] = after.phase
    metrics.RESUMES.inc(sum(1 for event in decision.events if event.reason == "Resuming"))
    finished = after.phase in api.TERMINAL_PHASES and before.phase not in api.TERMINAL_PHASES
    if finished and after.usage is not None:
        metrics.record_usage(after.usage, usage_report.model_id(spec.model), namespace)


def _track(runtime: Runtime, uid: str, status: api.BatchInferenceJobStatus) -> None:
    """Tell the poller which jobs to follow: the latest attempt's, until the resource is finished."""
    job = status.attempts[-1].job_name if status.attempts else None
    if status.phase in api.TERMINAL_PHASES or job is None or not status.project or not status.location:
        runtime.tracked.pop(uid, None)
        return
    create_time = status.job.create_time if status.job else None
    runtime.tracked[uid] = Tracked(status.project, status.location, job, create_time)


# ---------------------------------------------------------------- deletion


@kopf.on.delete(*GVR)
async def release(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, uid: str, memo: kopf.Memo, **_: Any
) -> None:
    runtime: Runtime = memo.runtime
    runtime.forget(uid)
    metrics.move(runtime.phases.pop(uid, None), None)
    project, location = status.get("project"), status.get("location")
    if status.get("phase") in api.TERMINAL_PHASES or not project or not location or not status.get("attempts"):
        return
    if spec.get("deletionPolicy", "Cancel") == "Abandon":
        kopf.event(
            body,
            type="Normal",
            reason="Abandoned",
            message="deletionPolicy is Abandon: the Vertex job keeps running; its output stays",
        )
        return
    try:
        cancelled = await runtime.vertex.cancel_all(project, location, {LABEL_UID: uid})
    except VertexError as error:
        deleted_at = meta.get("deletionTimestamp")
        started = datetime.datetime.fromisoformat(deleted_at.replace("Z", "+00:00")) if deleted_at else now()
        if not error.retryable or (now() - started).total_seconds() >= runtime.settings.finalizer_timeout:
            kopf.event(
                body,
                type="Warning",
                reason="FinalizerGaveUp",
                message=f"could not cancel the Vertex job ({error.message}); releasing the resource anyway, "
                "the job may still run",
            )
            return
        raise kopf.TemporaryError(error.message, delay=min(runtime.settings.retry_max, 10)) from error
    if cancelled:
        kopf.event(
            body,
            type="Normal",
            reason="CancelledOnDelete",
            message=f"cancelled Vertex job {', '.join(cancelled)} (deletionPolicy Cancel)",
        )
