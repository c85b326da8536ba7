"""Performs the core's actions against the outside world and folds each outcome back into a decision.

The adoption protocol lives here: before creating an attempt's job, list jobs labelled with this
resource's uid and attempt and adopt one if it exists (a crash after create); for a first attempt,
also adopt a job of an earlier resource with the same namespace, name and spec (GitOps re-create).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from .. import metrics
from ..adapters.errors import AdapterError
from ..api import BatchInferenceJobSpec, BatchInferenceJobStatus
from ..core.actions import CancelJob, Decision, Event, RunPreflight, ScanOutput, SubmitJob
from ..core.admission import Queue
from ..core.decide import decide
from ..core.identity import Resource
from ..core.policy import Tenancy
from ..core.preflight_jsonl import rejection
from ..core.pricing import estimate_cost
from ..core.record import (
    adopted_event,
    failure_reason,
    preflight_passed_event,
    record_failure,
    record_no_output,
    record_preflight,
    record_scan,
    record_submission,
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
from . import checks
from .runtime import Runtime, now

# How many action -> decision rounds one reconcile may run (preflight, marker, submit, follow).
MAX_ROUNDS = 4
# Vertex answers a cancel of a job that has finished meanwhile with this status: nothing to do.
ALREADY_FINISHED = "FAILED_PRECONDITION"


class VertexJobs(Protocol):
    """What the executor needs of Vertex (adapters.vertex.Vertex)."""

    async def get(self, project: str, location: str, name: str) -> ObservedJob: ...
    async def find_by_labels(
        self, project: str, location: str, labels: dict[str, str], states: Iterable[str] = ()
    ) -> list[ObservedJob]: ...
    async def create(self, request: JobRequest, attempt: int) -> ObservedJob: ...
    async def cancel(self, project: str, location: str, name: str) -> None: ...


async def submit(vertex: VertexJobs, action: SubmitJob) -> tuple[ObservedJob, str]:
    """Adopt this attempt's job if it exists, or a finished job of a re-created resource with the same
    name and spec; create one otherwise. Returns the job and how it was found."""
    project, location = action.request.project, action.request.location
    existing = await vertex.find_by_labels(project, location, action.identity_labels)
    how = "adopted"
    if not existing and action.adopt_labels:
        existing = await vertex.find_by_labels(project, location, action.adopt_labels, ADOPTABLE_STATES)
        how = "adopted-recreated"
    if existing:
        chosen = existing[0]
    else:
        chosen = await vertex.create(action.request, action.attempt)
        how = "created"
    return await vertex.get(project, location, chosen.name), how


async def cancel(vertex: VertexJobs, project: str, location: str, name: str) -> None:
    """Cancel one job; one that finished meanwhile needs nothing."""
    try:
        await vertex.cancel(project, location, name)
    except AdapterError as error:
        if error.status != ALREADY_FINISHED:
            raise


async def cancel_all(vertex: VertexJobs, project: str, location: str, labels: dict[str, str]) -> list[str]:
    """Cancel every unfinished job carrying these labels; returns their names."""
    cancelled = []
    for job in await vertex.find_by_labels(project, location, labels):
        if job.state not in TERMINAL_STATES and job.state != CANCELLING:
            await cancel(vertex, project, location, job.name)
            cancelled.append(job.name)
    return cancelled


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
            return Decision(decision.status, events=events)
        try:
            status, observed, extra = await perform(runtime, action, decision.status, spec)
        except AdapterError as error:
            failed = after_error(runtime, error, decision.status, resource, action)
            metrics.RECONCILE_ERRORS.labels(failed.events[0].reason).inc()
            return Decision(failed.status, events=events + failed.events)
        runtime.backoff.pop(resource.uid, None)
        events += extra
        if isinstance(action, CancelJob):
            return Decision(decision.status, events=events)
        decision = decide(spec, status, observed, resource, tenancy, now(), queue, created)
        events += decision.events
    return Decision(decision.status, decision.actions, events)


def after_error(
    runtime: Runtime, error: AdapterError, status: BatchInferenceJobStatus, resource: Resource, action: object
) -> Decision:
    """A recoverable error: back off and say so; any other: the resource fails with the cause."""
    if error.retryable:
        delay = runtime.delay_for(resource.uid)
        return retry_decision(status, error.message, delay, isinstance(action, SubmitJob), now(), resource.generation)
    reason, code = failure_reason(error.reason, error.code)
    return record_failure(status, reason, code, error.message, now(), resource.generation)


async def perform(
    runtime: Runtime, action: object, status: BatchInferenceJobStatus, spec: BatchInferenceJobSpec
) -> tuple[BatchInferenceJobStatus, ObservedJob | None, list[Event]]:
    """One action against the outside world; returns the status to decide from next."""
    if isinstance(action, SubmitJob):
        job, how = await submit(runtime.vertex, action)
        runtime.observations[job.name] = job
        metrics.SUBMISSIONS.labels(how).inc()
        events = [] if how == "created" else [adopted_event(job.name)]
        return record_submission(status, action.attempt, job, adopted=how != "created"), job, events
    if isinstance(action, RunPreflight):
        report, problems = await asyncio.to_thread(checks.preflight, runtime.gcs, runtime.bigquery, action)
        if problems:
            raise InputRejected(rejection(problems))
        return record_preflight(status, report), None, [preflight_passed_event(report, action.uris)]
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
        return record_scan(status, action.attempt, found.usage, found.rows, found.errors), None, []
    if isinstance(action, CancelJob):
        await cancel(runtime.vertex, action.project, action.location, action.job_name)
        return status, None, [Event("Normal", "Cancelling", f"cancelling Vertex job {action.job_name}")]
    raise TypeError(f"unknown action {action!r}")
