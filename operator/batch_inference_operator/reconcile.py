"""The pure reconciler: spec + status + the observed Vertex job in, actions + new status out.

No I/O happens here (an import-linter contract keeps kopf and the Google clients out), so nearly all
behaviour is unit-tested by calling `decide()` with values. The handlers run the actions it returns
and write the status it returns, and only when that status differs from the stored one.

The submit protocol makes paid jobs idempotent although Vertex's create has no request id:
1. `decide` first records the attempt with a `submitting` marker; the handler writes it.
2. On the next decision the marker is in status, so `decide` asks for `SubmitJob`. The handler lists
   jobs labelled with this resource's uid and attempt, adopts one if it exists, creates otherwise.
3. `record_submission` writes the job name and clears the marker.
A crash anywhere in between leads back to step 2, whose list finds the job created before the crash.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Literal

from .api import (
    TERMINAL_PHASES,
    Attempt,
    BatchInferenceJobSpec,
    BatchInferenceJobStatus,
    CompletionStats,
    Condition,
    JobError,
    JobRef,
)

MANAGED_BY = "batch-inference-operator"
LABEL_MANAGED_BY = "bij-managed-by"
LABEL_UID = "bij-uid"
LABEL_ATTEMPT = "bij-attempt"
LABEL_NAMESPACE = "bij-namespace"
LABEL_NAME = "bij-name"
LABEL_SPEC_HASH = "bij-spec-hash"

VERTEX_TERMINAL = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)
# States of a job worth adopting for a re-created resource: it ran or is running, so paying again is waste.
ADOPTABLE_STATES = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_UPDATING",
    }
)


# ---------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class Resource:
    namespace: str
    name: str
    uid: str
    generation: int = 1


@dataclass(frozen=True)
class Defaults:
    """Project and location when the spec names none: Namespace annotations first, then the operator's."""

    project: str | None
    location: str | None


@dataclass(frozen=True)
class ObservedJob:
    """What Vertex says about one job, in plain values."""

    name: str
    state: str
    create_time: datetime.datetime | None = None
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    error: JobError | None = None
    stats: CompletionStats | None = None
    output_location: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in VERTEX_TERMINAL


@dataclass(frozen=True)
class SubmitJob:
    """Find this attempt's job by its labels and adopt it, or create it."""

    attempt: int
    project: str
    location: str
    model: str
    display_name: str
    input_uris: tuple[str, ...]
    output_uri: str
    labels: dict[str, str]
    # For the first attempt: labels of a finished job of an earlier resource with the same namespace,
    # name and spec (re-created by GitOps), which is adopted instead of paying again.
    adopt_labels: dict[str, str] | None = None

    @property
    def identity_labels(self) -> dict[str, str]:
        return {LABEL_UID: self.labels[LABEL_UID], LABEL_ATTEMPT: self.labels[LABEL_ATTEMPT]}


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Decision:
    status: BatchInferenceJobStatus
    actions: list[SubmitJob] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


# ---------------------------------------------------------------- helpers


def label_value(text: str) -> str:
    """Vertex label values: at most 63 lowercase letters, digits, '_' or '-'."""
    return re.sub(r"[^a-z0-9_-]", "_", text.lower())[:63]


def spec_hash(spec: BatchInferenceJobSpec, project: str, location: str) -> str:
    """Identifies what a job computes: model, where, input and output; not lifecycle settings."""
    defining = {
        "model": spec.model,
        "project": project,
        "location": location,
        "input": spec.input.to_wire(),
        "output": spec.output.to_wire(),
    }
    return hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:16]


def console_url(job_name: str, project: str) -> str:
    parts = job_name.split("/")
    location, job_id = parts[3], parts[-1]
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{location}/batch-predictions/{job_id}?project={project}"
    )


def set_condition(
    status: BatchInferenceJobStatus,
    type_: str,
    value: bool | None,
    reason: str,
    message: str,
    now: datetime.datetime,
    generation: int,
) -> None:
    """metav1.Condition semantics: lastTransitionTime moves only when the status value changes."""
    text = "Unknown" if value is None else ("True" if value else "False")
    for index, condition in enumerate(status.conditions):
        if condition.type == type_:
            moved = condition.status != text
            status.conditions[index] = Condition(
                type=type_,
                status=text,
                reason=reason,
                message=message,
                last_transition_time=now if moved else condition.last_transition_time,
                observed_generation=generation,
            )
            return
    status.conditions.append(
        Condition(
            type=type_,
            status=text,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def operator_labels(resource: Resource, attempt: int, digest: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_UID: resource.uid,
        LABEL_ATTEMPT: str(attempt),
        LABEL_NAMESPACE: label_value(resource.namespace),
        LABEL_NAME: label_value(resource.name),
        LABEL_SPEC_HASH: digest,
    }


# ---------------------------------------------------------------- phases


_PHASE_OF_STATE = {
    "JOB_STATE_QUEUED": "Pending",
    "JOB_STATE_PENDING": "Pending",
    "JOB_STATE_RUNNING": "Running",
    "JOB_STATE_UPDATING": "Running",
    "JOB_STATE_CANCELLING": "Running",
    "JOB_STATE_PAUSED": "Running",
    "JOB_STATE_SUCCEEDED": "Succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "PartiallySucceeded",
    "JOB_STATE_FAILED": "Failed",
    "JOB_STATE_EXPIRED": "Failed",
    "JOB_STATE_CANCELLED": "Cancelled",
}


def _phase_for(job: ObservedJob) -> str:
    phase = _PHASE_OF_STATE.get(job.state, "Running")
    if phase == "Succeeded" and job.stats and job.stats.failed:
        return "PartiallySucceeded"
    return phase


def _summary(job: ObservedJob) -> str:
    stats = job.stats
    counts = f" ({stats.successful} succeeded, {stats.failed} failed, {stats.incomplete} incomplete)" if stats else ""
    short = job.state.removeprefix("JOB_STATE_").lower().replace("_", " ")
    if job.error and job.state in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
        return f"Vertex job {short}{counts}: error {job.error.code}: {job.error.message}"
    if job.state == "JOB_STATE_EXPIRED":
        return "Vertex job expired: it was not scheduled before Vertex's queue time limit"
    if job.state in ("JOB_STATE_PENDING", "JOB_STATE_QUEUED"):
        return "Vertex job pending: waiting for capacity"
    return f"Vertex job {short}{counts}"


# ---------------------------------------------------------------- the decision


def _fail(
    status: BatchInferenceJobStatus, reason: str, message: str, now: datetime.datetime, generation: int
) -> Decision:
    status.phase = "Failed"
    status.message = message
    status.completion_time = status.completion_time or now
    set_condition(status, "Failed", True, reason, message, now, generation)
    set_condition(status, "Complete", False, reason, message, now, generation)
    set_condition(status, "Ready", False, reason, message, now, generation)
    return Decision(status, events=[Event("Warning", reason, message)])


def decide(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    observed: ObservedJob | None,
    resource: Resource,
    defaults: Defaults,
    now: datetime.datetime,
) -> Decision:
    """What to do next and what the status should say. Pure: same inputs, same answer."""
    status = status.model_copy(deep=True)
    generation = resource.generation
    status.observed_generation = generation
    if status.phase in TERMINAL_PHASES:
        return Decision(status)

    project = status.project or spec.project or defaults.project
    location = status.location or spec.location or defaults.location
    if not project or not location:
        return _fail(
            status,
            "InvalidSpec",
            "no Google Cloud project: set spec.project, annotate the Namespace with "
            "batchinference.dev/project, or configure the operator's default project",
            now,
            generation,
        )
    status.project, status.location = project, location
    events: list[Event] = []

    if not status.attempts:
        if spec.suspend:
            return _suspended(status, now, generation)
        status.phase = "Pending"
        status.start_time = status.start_time or now
        status.attempts = [Attempt(attempt=1, submitting=now, input=spec.input.uris())]
        status.attempt = 1
        status.message = "submitting the Vertex batch prediction job"
        set_condition(status, "Submitted", False, "Submitting", status.message, now, generation)
        set_condition(status, "Suspended", False, "NotSuspended", "", now, generation)
        set_condition(status, "Ready", False, "Pending", status.message, now, generation)
        return Decision(
            status, events=[Event("Normal", "Accepted", f"submitting to Vertex AI in {project}/{location}")]
        )

    current = status.attempts[-1]
    if current.job_name is None:
        return Decision(status, actions=[_submit_action(spec, status, resource, current)])

    if observed is None or observed.name != current.job_name:
        return Decision(status)
    return _follow(status, current, observed, now, generation, events)


def _suspended(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> Decision:
    message = "suspended before submission: set spec.suspend to false to submit"
    changed = status.phase != "Suspended"
    status.phase = "Suspended"
    status.message = message
    set_condition(status, "Suspended", True, "Suspended", message, now, generation)
    set_condition(status, "Ready", False, "Suspended", message, now, generation)
    return Decision(status, events=[Event("Normal", "Suspended", message)] if changed else [])


def _submit_action(
    spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus, resource: Resource, attempt: Attempt
) -> SubmitJob:
    assert status.project and status.location
    digest = spec_hash(spec, status.project, status.location)
    display_name = (spec.display_name or f"{resource.namespace}-{resource.name}")[:128]
    adopt = None
    if attempt.attempt == 1:
        adopt = {
            LABEL_NAMESPACE: label_value(resource.namespace),
            LABEL_NAME: label_value(resource.name),
            LABEL_SPEC_HASH: digest,
        }
    return SubmitJob(
        attempt=attempt.attempt,
        project=status.project,
        location=status.location,
        model=spec.model,
        display_name=display_name,
        input_uris=tuple(attempt.input or spec.input.uris()),
        output_uri=spec.output.uri(),
        labels={**spec.labels, **operator_labels(resource, attempt.attempt, digest)},
        adopt_labels=adopt,
    )


def record_submission(
    status: BatchInferenceJobStatus, attempt: int, job: ObservedJob, adopted: bool
) -> BatchInferenceJobStatus:
    """The job of `attempt` is known: store its name and clear the `submitting` marker."""
    status = status.model_copy(deep=True)
    for entry in status.attempts:
        if entry.attempt == attempt:
            entry.job_name = job.name
            entry.submitting = None
    status.job = JobRef(
        name=job.name,
        state=job.state,
        create_time=job.create_time,
        console_url=console_url(job.name, status.project or ""),
    )
    if adopted:
        status.message = f"adopted the existing Vertex job {job.name}"
    return status


def _condition_true(status: BatchInferenceJobStatus, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in status.conditions)


def _follow(
    status: BatchInferenceJobStatus,
    current: Attempt,
    job: ObservedJob,
    now: datetime.datetime,
    generation: int,
    events: list[Event],
) -> Decision:
    previous_phase = status.phase
    if not _condition_true(status, "Submitted"):
        events.append(Event("Normal", "Submitted", f"Vertex batch prediction job {job.name}"))
    status.job = JobRef(
        name=job.name,
        state=job.state,
        create_time=job.create_time,
        start_time=job.start_time,
        end_time=job.end_time,
        console_url=console_url(job.name, status.project or ""),
    )
    current.state = job.state
    if job.stats is not None:
        status.completion_stats = job.stats
        current.completion_stats = job.stats
    if job.output_location:
        status.output_location = job.output_location
        current.output_location = job.output_location
    current.start_time = job.start_time
    current.end_time = job.end_time
    current.error = job.error
    phase = _phase_for(job)
    status.phase = phase  # type: ignore[assignment]
    status.message = _summary(job)
    set_condition(status, "Submitted", True, "Submitted", f"Vertex job {job.name}", now, generation)
    if phase in ("Succeeded", "PartiallySucceeded"):
        status.completion_time = status.completion_time or job.end_time or now
        set_condition(status, "Complete", True, phase, status.message, now, generation)
        set_condition(status, "Failed", False, phase, "", now, generation)
        set_condition(status, "Ready", True, phase, status.message, now, generation)
    elif phase in ("Failed", "Cancelled"):
        reason = {"JOB_STATE_EXPIRED": "Expired", "JOB_STATE_CANCELLED": "Cancelled"}.get(job.state, "VertexJobFailed")
        status.completion_time = status.completion_time or job.end_time or now
        set_condition(status, "Failed", True, reason, status.message, now, generation)
        set_condition(status, "Complete", False, reason, status.message, now, generation)
        set_condition(status, "Ready", False, reason, status.message, now, generation)
    else:
        set_condition(status, "Ready", False, phase, status.message, now, generation)
    if phase != previous_phase and phase != "Pending":
        kind: Literal["Normal", "Warning"] = "Warning" if phase in ("Failed", "Cancelled") else "Normal"
        events.append(Event(kind, phase, status.message))
    return Decision(status, events=events)


def record_retry(
    status: BatchInferenceJobStatus, message: str, now: datetime.datetime, generation: int
) -> BatchInferenceJobStatus:
    """A recoverable Vertex error: say so in status; the handler retries after a backoff."""
    status = status.model_copy(deep=True)
    status.message = message
    set_condition(status, "Ready", False, "Retrying", message, now, generation)
    return status


def record_failure(
    status: BatchInferenceJobStatus, reason: str, code: int, message: str, now: datetime.datetime, generation: int
) -> Decision:
    """A terminal error (the spec must change): Failed, with Vertex's message, never retried."""
    status = status.model_copy(deep=True)
    if status.attempts and status.attempts[-1].job_name is None:
        status.attempts[-1].submitting = None
        status.attempts[-1].error = JobError(code=code, message=message)
    return _fail(status, reason, message, now, generation)
