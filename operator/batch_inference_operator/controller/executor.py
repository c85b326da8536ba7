"""Performs the core's actions against the outside world and folds each outcome back into a decision.

The adoption protocol lives here: before creating an attempt's job, list jobs labelled with this
resource's uid and attempt and adopt one if it exists (a crash after create); for a first attempt,
also adopt a job of an earlier resource with the same namespace, name and spec (GitOps re-create).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .. import metrics
from ..adapters.errors import AdapterError
from ..adapters.vertex import UNREACHABLE
from ..api import BatchInferenceJobSpec, BatchInferenceJobStatus
from ..core.actions import CancelJob, Decision, Event, RunPreflight, ScanOutput, SubmitJob, WriteManifest
from ..core.admission import Queue
from ..core.decide import decide
from ..core.exactly_once import ambiguous, create_gate
from ..core.identity import Resource
from ..core.manifest import missing_event, record_manifest, record_manifest_failed, record_missing
from ..core.permissions import FORBIDDEN
from ..core.policy import Tenancy
from ..core.preflight_jsonl import rejection
from ..core.pricing import cost_problem, estimate_cost, estimate_input
from ..core.record import (
    adopted_event,
    duplicates_event,
    failure_reason,
    preflight_passed_event,
    record_create_wait,
    record_failure,
    record_new_marker,
    record_no_output,
    record_preflight,
    record_scan,
    record_submission,
    record_uncertain_create,
    retry_decision,
)
from ..core.vertex_jobs import (
    ADOPTABLE_STATES,
    CANCELLING,
    INVALID_INPUT_CODE,
    TERMINAL_STATES,
    JobRequest,
    ObservedJob,
)
from ..core.wording import plural
from . import checks, results, split
from .denied import permission_denied
from .runtime import Runtime

# How many action -> decision rounds one reconcile may run (preflight, marker, submit, follow).
MAX_ROUNDS = 4
# google.rpc.Code UNAVAILABLE: the code an unreachable endpoint is recorded with.
UNAVAILABLE_CODE = 14
# Vertex answers a cancel of a job that has finished meanwhile with this status: nothing to do.
ALREADY_FINISHED = "FAILED_PRECONDITION"


class VertexJobs(Protocol):
    """What the executor needs of Vertex (adapters.vertex.Vertex)."""

    async def find_by_labels(
        self, project: str, location: str, labels: dict[str, str], states: Iterable[str] = ()
    ) -> list[ObservedJob]: ...
    async def create(self, request: JobRequest, attempt: int) -> ObservedJob: ...
    async def cancel(self, project: str, location: str, name: str) -> None: ...


class CreateOutcomeUnknown(AdapterError):
    """A create failed in a way that does not say whether Vertex made the job (a timeout, a reset, a 5xx)."""

    def __init__(self, cause: AdapterError) -> None:
        super().__init__(cause.message, retryable=True, code=cause.code, status=cause.status)


@dataclass
class Submitted:
    """What a submit did: the job (None when it waited or wrote a new marker), how, and duplicates cancelled."""

    job: ObservedJob | None
    how: str  # created | adopted | adopted-recreated | wait | remark
    duplicates: list[str] = field(default_factory=list)


async def submit(
    vertex: VertexJobs,
    action: SubmitJob,
    fresh: bool,
    now: datetime.datetime,
    settle: datetime.timedelta,
    lands_within: datetime.timedelta,
    first: bool = False,
) -> Submitted:
    """The adoption protocol. Adopt this attempt's job if one exists (cancelling any second one: a create
    that landed late), or a job of a re-created resource with the same name and spec; otherwise create,
    but only when `create_gate` allows it (core/exactly_once.py).

    Vertex calls: the lookup of this attempt's job is skipped for the attempt's `first` marker, stored
    by this process and followed by no create yet: no create for the attempt was ever sent, so no job
    can exist. A first attempt looks once for a re-created resource's job (GitOps adoption). The job
    the create answers with is the job: no GET follows (the poller follows it)."""
    project, location = action.request.project, action.request.location
    if not (fresh and first):
        existing = await vertex.find_by_labels(project, location, action.identity_labels)
        if existing:
            keep, *extra = sorted(existing, key=lambda job: (job.create_time is None, job.create_time, job.name))
            duplicates = await cancel_each(vertex, project, location, extra)
            metrics.DUPLICATES_CANCELLED.inc(len(duplicates))
            return Submitted(keep, "adopted", duplicates)
    if action.adopt_labels:
        earlier = await vertex.find_by_labels(project, location, action.adopt_labels, ADOPTABLE_STATES)
        if earlier:
            # Vertex documents no list order: prefer a job still running, then the newest.
            best = max(earlier, key=lambda job: (job.state not in TERMINAL_STATES, job.create_time or now))
            return Submitted(best, "adopted-recreated")
    gate = create_gate(action.marker, fresh, now, settle, lands_within)
    if gate != "create":
        return Submitted(None, gate)
    try:
        created = await vertex.create(action.request, action.attempt)
    except AdapterError as error:
        if ambiguous(error.code, error.retryable, connected=error.reason != UNREACHABLE):
            raise CreateOutcomeUnknown(error) from error
        raise
    return Submitted(created, "created")


async def cancel_each(vertex: VertexJobs, project: str, location: str, jobs: list[ObservedJob]) -> list[str]:
    """Cancel these jobs where they still run; returns the names of those cancelled."""
    cancelled = []
    for job in jobs:
        if job.state not in TERMINAL_STATES and job.state != CANCELLING:
            await cancel(vertex, project, location, job.name)
            cancelled.append(job.name)
    return cancelled


async def cancel(vertex: VertexJobs, project: str, location: str, name: str) -> None:
    """Cancel one job; one that finished meanwhile needs nothing."""
    try:
        await vertex.cancel(project, location, name)
    except AdapterError as error:
        if error.status != ALREADY_FINISHED:
            raise


async def cancel_all(vertex: VertexJobs, project: str, location: str, labels: dict[str, str]) -> list[str]:
    """Cancel every unfinished job carrying these labels; returns their names."""
    return await cancel_each(vertex, project, location, await vertex.find_by_labels(project, location, labels))


class CostRefused(AdapterError):
    """The estimate is over spec.maxEstimatedCostUSD: the resource fails before anything is paid."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, reason="CostLimitExceeded", code=INVALID_INPUT_CODE)


class InputRejected(AdapterError):
    """Preflight found the input breaks Vertex's rules: the resource fails, nothing is submitted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, reason="InvalidInput", code=INVALID_INPUT_CODE)


async def act(
    runtime: Runtime,
    decision: Decision,
    spec: BatchInferenceJobSpec,
    resource: Resource,
    tenancy: Tenancy,
    queue: Queue,
    created: str,
) -> Decision:
    """Run the decision's action and fold its outcome back into a new decision (at most a few rounds)."""
    events: list[Event] = list(decision.events)
    for _ in range(MAX_ROUNDS):
        if not decision.actions:
            break
        action = decision.actions[0]
        if not isinstance(action, CancelJob) and not runtime.may_try(resource.uid):
            return Decision(decision.status, events=events, requeue_after=runtime.until_retry(resource.uid))
        try:
            status, observed, extra = await perform(runtime, action, decision.status, spec, resource)
        except AdapterError as error:
            failed = after_error(runtime, error, decision.status, resource, action)
            metrics.RECONCILE_ERRORS.labels(failed.events[0].reason).inc()
            retry = runtime.until_retry(resource.uid) if failed.status.phase != "Failed" else None
            return Decision(failed.status, events=events + failed.events, requeue_after=retry)
        runtime.backoff.pop(resource.uid, None)
        events += extra
        if isinstance(action, CancelJob):
            return Decision(decision.status, events=events)
        if isinstance(action, SubmitJob) and observed is None:  # waiting, or a new marker to write first
            wait = ((action.marker or runtime.clock()) + runtime.settle - runtime.clock()).total_seconds()
            return Decision(status, events=events, requeue_after=max(0.0, wait))
        decision = decide(spec, status, observed, resource, tenancy, runtime.clock(), queue, created)
        events += decision.events
    return Decision(decision.status, decision.actions, events)


def after_error(
    runtime: Runtime, error: AdapterError, status: BatchInferenceJobStatus, resource: Resource, action: object
) -> Decision:
    """A recoverable error: back off and say so; any other: the resource fails with the cause."""
    if isinstance(action, CancelJob) and not error.retryable:
        # A cancel Vertex refuses (the job is gone, say) must not read as a failed spec: say so and try
        # again later; the decision re-sends the cancel while the job still runs.
        delay = runtime.delay_for(resource.uid)
        return retry_decision(status, error.message, delay, False, runtime.clock(), resource.generation)
    if isinstance(error, CreateOutcomeUnknown) and isinstance(action, SubmitJob):
        runtime.delay_for(resource.uid)
        until = (action.marker or runtime.clock()) + runtime.settle
        return record_uncertain_create(
            status, action.attempt, error.message, until, runtime.clock(), resource.generation
        )
    if error.retryable:
        delay = runtime.delay_for(resource.uid)
        tries = runtime.backoff[resource.uid].failures
        if error.code == FORBIDDEN:
            return permission_denied(runtime, error, status, resource, action, delay)
        if error.reason == UNREACHABLE and tries >= runtime.settings.unreachable_tries:
            message = f"{error.message} ({plural(tries, 'try')}): check spec.location and the operator's network"
            return record_failure(status, UNREACHABLE, UNAVAILABLE_CODE, message, runtime.clock(), resource.generation)
        retried = retry_decision(
            status, error.message, delay, isinstance(action, SubmitJob), runtime.clock(), resource.generation
        )
        if tries == 1:  # a problem its first retry may clear is an Event only; status says so from the second
            return Decision(status, events=retried.events)
        return retried
    reason, code = failure_reason(error.reason, error.code)
    return record_failure(status, reason, code, error.message, runtime.clock(), resource.generation)


async def perform(
    runtime: Runtime,
    action: object,
    status: BatchInferenceJobStatus,
    spec: BatchInferenceJobSpec,
    resource: Resource,
) -> tuple[BatchInferenceJobStatus, ObservedJob | None, list[Event]]:
    """One action against the outside world; returns the status to decide from next."""
    if isinstance(action, SubmitJob):
        marker = runtime.fresh.pop(resource.uid, None)
        fresh = marker is not None and action.marker is not None and marker.at == action.marker
        first = fresh and marker is not None and marker.first
        try:
            done = await submit(
                runtime.vertex, action, fresh, runtime.clock(), runtime.settle, runtime.lands_within, first
            )
        except AdapterError as error:
            if fresh and not isinstance(error, CreateOutcomeUnknown) and marker is not None:
                runtime.fresh[resource.uid] = marker  # nothing was created: the marker still holds
            raise
        if done.job is None:
            if done.how == "remark":
                return record_new_marker(status, action.attempt, runtime.clock()), None, []
            until = (action.marker or runtime.clock()) + runtime.settle
            return record_create_wait(status, action.attempt, until), None, []
        job = done.job
        runtime.observations[job.name] = job
        metrics.SUBMISSIONS.labels(done.how).inc()
        events = [] if done.how == "created" else [adopted_event(job.name)]
        if done.duplicates:
            events.append(duplicates_event(done.duplicates, job.name))
        return record_submission(status, action.attempt, job, adopted=done.how != "created"), job, events
    if isinstance(action, RunPreflight):
        checked = await asyncio.to_thread(checks.check_input, runtime.gcs, runtime.bigquery, action)
        if checked.problems:
            raise InputRejected(rejection(checked.problems))
        estimate = estimate_input(checked.tally, spec.model, runtime.prices)
        refused = cost_problem(estimate, spec.max_estimated_cost_usd, spec.model)
        if refused:
            status.estimate = estimate  # the failure is recorded on this status: it shows what was estimated
            raise CostRefused(refused)
        shards = []
        if checked.split:  # over a job's limits: cut into shards now, before anything is submitted
            shards = await asyncio.to_thread(split.split_input, runtime.gcs, runtime.bigquery, action, checked)
        recorded = record_preflight(status, checked.report, estimate, shards)
        return recorded, None, [preflight_passed_event(checked.report, action.uris)]
    if isinstance(action, ScanOutput):
        try:
            found = await asyncio.to_thread(
                checks.scan_output, runtime.gcs, runtime.bigquery, action.output_location, status
            )
        except AdapterError as error:
            if error.retryable:
                raise
            # The job stopped before writing anything (its input was rejected, say): nothing to resume from.
            return record_no_output(status, action.attempt), None, []
        found.usage.estimated_cost_usd = estimate_cost(found.usage, spec.model, runtime.prices)
        status = record_scan(status, action.attempt, found.usage, found.rows, found.errors)
        missing, missing_input, problem = await asyncio.to_thread(
            results.find_missing, runtime.gcs, runtime.bigquery, action, status.project or ""
        )
        events = [missing_event(missing, action.attempt, missing_input, problem)] if missing else []
        return record_missing(status, action.attempt, missing, missing_input), None, events
    if isinstance(action, WriteManifest):
        written, events = await write_manifest(runtime, status, action)
        return written, None, events
    if isinstance(action, CancelJob):
        await cancel(runtime.vertex, action.project, action.location, action.job_name)
        seen = runtime.observations.get(action.job_name)
        if seen is not None and not seen.terminal:  # what we know until the poller sees it: no resend meanwhile
            runtime.observations[action.job_name] = dataclasses.replace(seen, state=CANCELLING)
        return status, None, [Event("Normal", "Cancelling", f"cancelling Vertex job {action.job_name}")]
    raise TypeError(f"unknown action {action!r}")


async def write_manifest(
    runtime: Runtime, status: BatchInferenceJobStatus, action: WriteManifest
) -> tuple[BatchInferenceJobStatus, list[Event]]:
    """Write a finished resource's results manifest (a single job's, or a sharded parent's over all shards)
    and record its row totals; a retryable failure raises, to be tried again after a backoff."""
    try:
        totals = await asyncio.to_thread(results.write_manifest, runtime.gcs, runtime.bigquery, action)
    except AdapterError as error:
        if error.retryable and error.code != FORBIDDEN:
            raise  # a grant does not come by waiting here: a 403 does not hold the resource back
        message = f"the results manifest {action.uri} was not written: {error.message}"
        return record_manifest_failed(status), [Event("Warning", "ManifestNotWritten", message)]
    return record_manifest(status, action.uri, totals), []
