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
    PreflightReport,
    RowCounts,
    Usage,
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
# Job error codes that no resume can fix: the input was rejected (3), a bucket does not exist (9).
TERMINAL_JOB_CODES = frozenset({3, 9})
# Implicit caching is "ineffective" when many requests share a long prefix but few tokens hit the cache.
CACHE_SHARED_SHARE = 0.2
CACHE_LOW_RATIO = 0.05
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
    """Project and location when the spec names none: Namespace annotations first, then the operator's.
    Also the Namespace's data policy: None allows everything, a tuple allows only what it lists."""

    project: str | None
    location: str | None
    allowed_gcs_prefixes: tuple[str, ...] | None = None
    allowed_bigquery_datasets: tuple[str, ...] | None = None


def _under_prefix(uri: str, prefix: str) -> bool:
    """A prefix is a folder: gs://bucket/team-a covers gs://bucket/team-a/... (and that exact object), never
    gs://bucket/team-a-other/; gs://bucket covers the whole bucket, never gs://bucket-2."""
    folder = prefix.rstrip("/") + "/"
    return uri.startswith(folder) or uri.rstrip("/") == prefix.rstrip("/")


def policy_violations(spec: BatchInferenceJobSpec, defaults: Defaults) -> list[str]:
    """The Vertex job reads and writes as Google's service agent, not as this namespace: the Namespace's
    allowed prefixes and datasets are the only guard between teams, so they are checked before submit."""
    problems = []
    gcs = [*(spec.input.gcs.uris if spec.input.gcs else []), *([spec.output.gcs.uri_prefix] if spec.output.gcs else [])]
    if defaults.allowed_gcs_prefixes is not None:
        for uri in gcs:
            if not any(_under_prefix(uri, prefix) for prefix in defaults.allowed_gcs_prefixes):
                problems.append(
                    f"{uri} is outside the namespace's allowed Cloud Storage prefixes "
                    f"({', '.join(defaults.allowed_gcs_prefixes) or 'none'})"
                )
    tables = [
        *([spec.input.bigquery.table] if spec.input.bigquery else []),
        *([spec.output.bigquery.uri()] if spec.output.bigquery else []),
    ]
    if defaults.allowed_bigquery_datasets is not None:
        for uri in tables:
            dataset = ".".join(uri.split(".")[:2])
            if dataset not in defaults.allowed_bigquery_datasets:
                problems.append(
                    f"{uri} is outside the namespace's allowed BigQuery datasets "
                    f"({', '.join(defaults.allowed_bigquery_datasets) or 'none'})"
                )
    return problems


@dataclass(frozen=True)
class Peer:
    """Another BatchInferenceJob, as the concurrency queue needs to see it."""

    uid: str
    created: str  # creationTimestamp (whole seconds): queue order
    name: str  # "namespace/name": breaks ties within a second
    project: str | None
    location: str | None
    phase: str | None
    attempted: bool  # has at least one attempt (submitted, or about to be)


@dataclass(frozen=True)
class Queue:
    """`maxConcurrentJobs` per project and location (0: no limit), and the other resources."""

    limit: int = 0
    peers: tuple[Peer, ...] = ()


ACTIVE_PHASES = frozenset({"Pending", "Running", "Resuming"})


def admission(resource: Resource, created: str, project: str, location: str, queue: Queue) -> tuple[bool, int, int]:
    """(admitted, running, position): jobs holding a slot in this project/location, and this resource's
    place among those waiting, oldest first. A soft limit: two resources deciding at the same instant
    from the same view may both take the last slot."""
    if queue.limit <= 0:
        return True, 0, 0
    # A peer whose project or location is not resolved yet (created a moment ago) may be in this queue.
    same = [
        p
        for p in queue.peers
        if p.uid != resource.uid
        and (p.project, p.location) in ((project, location), (None, None), (project, None), (None, location))
    ]
    running = sum(1 for p in same if p.attempted and p.phase in ACTIVE_PHASES)
    ahead = sum(
        1
        for p in same
        if not p.attempted
        and p.phase in ("Queued", "Pending", None)
        and (p.created, p.name) < (created, f"{resource.namespace}/{resource.name}")
    )
    return running + ahead < queue.limit, running, ahead + 1


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
class RunPreflight:
    """Check the input against Vertex's rules (JSONL files streamed; a BigQuery table by its metadata),
    and a BigQuery output's dataset (exists, in the job's region)."""

    uris: tuple[str, ...]
    location: str
    project: str
    bigquery_output: str | None = None


@dataclass(frozen=True)
class ScanOutput:
    """Stream a finished attempt's output: token usage and which rows failed how."""

    attempt: int
    output_location: str


@dataclass(frozen=True)
class CancelJob:
    attempt: int
    project: str
    location: str
    job_name: str


Action = SubmitJob | RunPreflight | ScanOutput | CancelJob


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Decision:
    status: BatchInferenceJobStatus
    actions: list[Action] = field(default_factory=list)
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


def _phase_event(previous: str | None, status: BatchInferenceJobStatus, events: list[Event]) -> None:
    if status.phase != previous and status.phase not in ("Pending",):
        kind: Literal["Normal", "Warning"] = "Warning" if status.phase in ("Failed", "Cancelled") else "Normal"
        events.append(Event(kind, status.phase or "", status.message or ""))


def decide(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    observed: ObservedJob | None,
    resource: Resource,
    defaults: Defaults,
    now: datetime.datetime,
    queue: Queue | None = None,
    created: str = "",
) -> Decision:
    """What to do next and what the status should say. Pure: same inputs, same answer.

    The path of a resource: preflight -> submitting marker -> submit -> follow the job -> read its output
    -> settle: resume (a new attempt fed the output), hold (suspended), or finish.
    """
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

    if not status.attempts:
        violations = policy_violations(spec, defaults)
        if violations:
            message = "refused by the namespace's data policy: " + "; ".join(violations)
            return _fail(status, "PolicyViolation", message, now, generation)
        return _before_first_attempt(spec, status, resource, now, generation, queue or Queue(), created)

    current = status.attempts[-1]
    if current.job_name is None:
        if spec.suspend and current.attempt > 1:
            return _hold(status, now, generation)
        return Decision(status, actions=[_submit_action(spec, status, resource, current)])

    if current.state in VERTEX_TERMINAL:
        return _after_attempt(spec, status, current, now, generation)

    if spec.suspend and not current.cancel_requested:
        current.cancel_requested = True
        previous = status.phase
        status.phase = "Suspended"
        status.message = f"suspending: cancelling Vertex job {current.job_name}; unfinished requests resume later"
        set_condition(status, "Suspended", True, "Suspended", status.message, now, generation)
        set_condition(status, "Ready", False, "Suspended", status.message, now, generation)
        events: list[Event] = []
        _phase_event(previous, status, events)
        return Decision(
            status, actions=[CancelJob(current.attempt, project, location, current.job_name)], events=events
        )

    if observed is None or observed.name != current.job_name:
        return Decision(status)
    return _follow(spec, status, current, observed, now, generation)


def _before_first_attempt(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    resource: Resource,
    now: datetime.datetime,
    generation: int,
    queue: Queue,
    created: str,
) -> Decision:
    if spec.suspend:
        return _suspended(status, now, generation)
    status.start_time = status.start_time or now
    previous = status.phase
    if spec.preflight == "Enabled" and status.preflight is None:
        status.phase = "Pending"
        status.message = "checking the input against Vertex's import rules"
        set_condition(status, "Ready", False, "Preflight", status.message, now, generation)
        output = spec.output.bigquery.uri() if spec.output.bigquery else None
        return Decision(
            status,
            actions=[RunPreflight(tuple(spec.input.uris()), status.location or "", status.project or "", output)],
        )
    admitted, running, position = admission(resource, created, status.project or "", status.location or "", queue)
    if not admitted:
        status.phase = "Queued"
        status.message = (
            f"queued (position {position}): {running} of at most {queue.limit} jobs are running in "
            f"{status.project}/{status.location}"
        )
        set_condition(status, "Ready", False, "Queued", status.message, now, generation)
        events = [Event("Normal", "Queued", status.message)] if previous != "Queued" else []
        return Decision(status, events=events)
    status.phase = "Pending"
    status.attempts = [Attempt(attempt=1, submitting=now, input=spec.input.uris())]
    status.attempt = 1
    status.message = "submitting the Vertex batch prediction job"
    set_condition(status, "Submitted", False, "Submitting", status.message, now, generation)
    set_condition(status, "Suspended", False, "NotSuspended", "", now, generation)
    set_condition(status, "Ready", False, "Pending", status.message, now, generation)
    return Decision(
        status, events=[Event("Normal", "Accepted", f"submitting to Vertex AI in {status.project}/{status.location}")]
    )


def _suspended(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> Decision:
    message = "suspended before submission: set spec.suspend to false to submit"
    changed = status.phase != "Suspended"
    status.phase = "Suspended"
    status.message = message
    set_condition(status, "Suspended", True, "Suspended", message, now, generation)
    set_condition(status, "Ready", False, "Suspended", message, now, generation)
    return Decision(status, events=[Event("Normal", "Suspended", message)] if changed else [])


def _hold(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> Decision:
    """Suspended between attempts: the unfinished requests wait until spec.suspend is false."""
    previous = status.phase
    status.phase = "Suspended"
    status.message = "suspended: set spec.suspend to false to resume the unfinished requests"
    set_condition(status, "Suspended", True, "Suspended", status.message, now, generation)
    set_condition(status, "Ready", False, "Suspended", status.message, now, generation)
    events: list[Event] = []
    _phase_event(previous, status, events)
    return Decision(status, events=events)


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
    input_uris = tuple(attempt.input or spec.input.uris())
    return SubmitJob(
        attempt=attempt.attempt,
        project=status.project,
        location=status.location,
        model=spec.model,
        display_name=display_name,
        input_uris=input_uris,
        output_uri=output_for(spec, input_uris),
        labels={**spec.labels, **operator_labels(resource, attempt.attempt, digest)},
        adopt_labels=adopt,
    )


def output_for(spec: BatchInferenceJobSpec, input_uris: tuple[str, ...]) -> str:
    """Where an attempt writes. A resumed attempt reads the named output table it would write to; what
    Vertex does with an existing output table is not documented (appending would duplicate every carried
    row), so it writes a new table in that dataset instead. That table holds every row, the carried ones
    too, and status.outputLocation follows it."""
    table = spec.output.bigquery.table if spec.output.bigquery else None
    if table and table in input_uris:
        return table.rsplit(".", 1)[0]
    return spec.output.uri()


def _with_attempt(status: BatchInferenceJobStatus, number: int) -> tuple[BatchInferenceJobStatus, Attempt]:
    """A copy of the status, and the attempt with this number in it (the record_* functions' starting point)."""
    status = status.model_copy(deep=True)
    return status, next(entry for entry in status.attempts if entry.attempt == number)


def record_submission(
    status: BatchInferenceJobStatus, attempt: int, job: ObservedJob, adopted: bool
) -> BatchInferenceJobStatus:
    """The job of `attempt` is known: store its name and clear the `submitting` marker."""
    status, entry = _with_attempt(status, attempt)
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


def _has_readable_output(attempt: Attempt) -> bool:
    location = attempt.output_location or ""
    return bool(location.startswith(("gs://", "bq://")) and attempt.start_time)


def _follow(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    job: ObservedJob,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """Mirror the observed job into status; a finished one is read, then settled."""
    events: list[Event] = []
    previous = status.phase
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
    set_condition(status, "Submitted", True, "Submitted", f"Vertex job {job.name}", now, generation)
    if not job.terminal:
        status.phase = "Suspended" if current.cancel_requested else _PHASE_OF_STATE.get(job.state, "Running")  # type: ignore[assignment]
        status.message = _summary(job)
        set_condition(status, "Ready", False, status.phase or "", status.message, now, generation)
        _phase_event(previous, status, events)
        return Decision(status, events=events)
    status.message = _summary(job)
    after = _after_attempt(spec, status, current, now, generation)
    return Decision(after.status, after.actions, events + after.events)


def _after_attempt(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A terminal attempt: read its output first (once), then settle it."""
    if current.rows is None and _has_readable_output(current):
        status.message = f"attempt {current.attempt} ended; reading its output"
        return Decision(status, actions=[ScanOutput(current.attempt, current.output_location or "")])
    return _settle(spec, status, current, now, generation)


def _resumable(attempt: Attempt, retry: str) -> bool:
    state = attempt.state
    if state == "JOB_STATE_FAILED":
        return not (attempt.error and attempt.error.code in TERMINAL_JOB_CODES)
    if state in ("JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"):
        return True
    if state == "JOB_STATE_SUCCEEDED":
        rows = attempt.rows
        if rows is not None:
            return bool(
                rows.incomplete
                or (retry == "All" and rows.failed_transient + rows.failed_permanent)
                or (retry == "Transient" and rows.failed_transient)
            )
        stats = attempt.completion_stats
        return bool(stats and (stats.incomplete or (retry == "All" and stats.failed)))
    return False


def _unfinished(attempt: Attempt) -> int:
    if attempt.rows is not None:
        return attempt.rows.failed_transient + attempt.rows.failed_permanent + attempt.rows.incomplete
    stats = attempt.completion_stats
    return (stats.failed + stats.incomplete) if stats else 0


def _settle(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A finished attempt: resume it, hold it (suspended), or finish the resource."""
    previous = status.phase
    events: list[Event] = []
    if current.cancel_requested and current.state == "JOB_STATE_CANCELLED":
        if spec.suspend:
            return _hold(status, now, generation)
        return _next_attempt(spec, status, current, now, generation, previous)
    used = sum(1 for attempt in status.attempts if not attempt.cancel_requested)
    if _resumable(current, spec.resume.retry_failed_requests) and used < spec.resume.max_attempts:
        if spec.suspend:
            return _hold(status, now, generation)
        resume_at = (current.end_time or now) + datetime.timedelta(seconds=spec.resume.backoff_seconds)
        if now < resume_at:
            status.phase = "Resuming"
            status.message = (
                (
                    f"attempt {current.attempt} ended {current.state.removeprefix('JOB_STATE_').lower()}"
                    f" with {_unfinished(current)} unfinished requests; attempt {current.attempt + 1} "
                    f"starts at {resume_at.strftime('%H:%M:%SZ')}"
                )
                if current.state
                else status.message
            )
            set_condition(status, "Ready", False, "Resuming", status.message or "", now, generation)
            _phase_event(previous, status, events)
            return Decision(status, events=events)
        return _next_attempt(spec, status, current, now, generation, previous)
    return _finish(status, current, now, generation, previous)


def _next_attempt(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
    previous: str | None,
) -> Decision:
    """A new Vertex job fed the previous output (Vertex re-runs only unfinished rows and carries the rest);
    the original input when the previous job never ran."""
    output = current.output_location
    if current.start_time and output:
        source = [f"{output}/predictions.jsonl"] if output.startswith("gs://") else [output]
    else:
        source = spec.input.uris()
    number = current.attempt + 1
    status.attempts.append(Attempt(attempt=number, submitting=now, input=source))
    status.attempt = number
    status.phase = "Resuming"
    status.message = (
        f"attempt {number} of {spec.resume.max_attempts}: resuming "
        f"{_unfinished(current) or 'the'} unfinished requests from {source[0]}"
    )
    set_condition(status, "Suspended", False, "NotSuspended", "", now, generation)
    set_condition(status, "Ready", False, "Resuming", status.message, now, generation)
    return Decision(status, events=[Event("Normal", "Resuming", status.message)])


def _finish(
    status: BatchInferenceJobStatus, current: Attempt, now: datetime.datetime, generation: int, previous: str | None
) -> Decision:
    state = current.state or ""
    remaining = _unfinished(current)
    if state == "JOB_STATE_SUCCEEDED":
        phase = "PartiallySucceeded" if remaining else "Succeeded"
    elif state == "JOB_STATE_PARTIALLY_SUCCEEDED":
        phase = "PartiallySucceeded"
    elif state == "JOB_STATE_CANCELLED":
        phase = "Cancelled"
    else:
        phase = "Failed"
    status.phase = phase  # type: ignore[assignment]
    job = ObservedJob(name=current.job_name or "", state=state, error=current.error, stats=current.completion_stats)
    status.message = _summary(job)
    if current.attempt > 1:
        status.message += f" after {current.attempt} attempts"
    if remaining and phase == "PartiallySucceeded":
        status.message += f"; {remaining} requests did not succeed"
    status.completion_time = status.completion_time or current.end_time or now
    events: list[Event] = []
    if phase in ("Succeeded", "PartiallySucceeded"):
        set_condition(status, "Complete", True, phase, status.message, now, generation)
        set_condition(status, "Failed", False, phase, "", now, generation)
        set_condition(status, "Ready", True, phase, status.message, now, generation)
    else:
        code = current.error.code if current.error else None
        reason = {"JOB_STATE_EXPIRED": "Expired", "JOB_STATE_CANCELLED": "Cancelled"}.get(
            state, "InvalidInput" if code == 3 else "VertexJobFailed"
        )
        set_condition(status, "Failed", True, reason, status.message, now, generation)
        set_condition(status, "Complete", False, reason, status.message, now, generation)
        set_condition(status, "Ready", False, reason, status.message, now, generation)
    _phase_event(previous, status, events)
    events += _cache_check(status)
    return Decision(status, events=events)


def _cache_check(status: BatchInferenceJobStatus) -> list[Event]:
    """Warn when many requests shared a long prefix but the job's cache hit ratio stayed low."""
    report, usage = status.preflight, status.usage
    if not report or not usage or not report.requests or not usage.prompt_tokens:
        return []
    if report.shared_prefix_requests is None:  # not counted (a BigQuery input)
        return []
    shared = report.shared_prefix_requests / report.requests
    if shared < CACHE_SHARED_SHARE or usage.cache_hit_ratio >= CACHE_LOW_RATIO:
        return []
    return [
        Event(
            "Warning",
            "ImplicitCachingIneffective",
            f"{report.shared_prefix_requests} of {report.requests} requests share a prompt prefix of at least "
            f"2,048 tokens, so implicit caching should have served part of their prompts, but the cache hit "
            f"ratio was {usage.cache_hit_ratio:.1%}. Put the shared part first in every request and keep "
            "the model and project the same.",
        )
    ]


def record_preflight(status: BatchInferenceJobStatus, report: PreflightReport) -> BatchInferenceJobStatus:
    status = status.model_copy(deep=True)
    status.preflight = report
    return status


def record_scan(
    status: BatchInferenceJobStatus, attempt: int, usage: Usage, rows: RowCounts
) -> BatchInferenceJobStatus:
    """A finished attempt's output was read: its row outcomes, and usage (its output holds every row)."""
    status, entry = _with_attempt(status, attempt)
    entry.rows = rows
    status.usage = usage
    return status


def record_no_output(status: BatchInferenceJobStatus, attempt: int) -> BatchInferenceJobStatus:
    """A finished attempt left no output file: no rows to count, and a resume starts from the input."""
    status, entry = _with_attempt(status, attempt)
    missing = entry.output_location
    entry.rows = RowCounts()
    entry.output_location = None
    if status.output_location == missing:  # point at the latest output that exists, if any
        existing = [a.output_location for a in status.attempts if a.output_location]
        status.output_location = existing[-1] if existing else None
    return status


def record_retry(
    status: BatchInferenceJobStatus, message: str, now: datetime.datetime, generation: int
) -> BatchInferenceJobStatus:
    """A recoverable error: say so in status; the handler retries after a backoff."""
    status = status.model_copy(deep=True)
    status.message = message
    set_condition(status, "Ready", False, "Retrying", message, now, generation)
    return status


def record_failure(
    status: BatchInferenceJobStatus, reason: str, code: int, message: str, now: datetime.datetime, generation: int
) -> Decision:
    """A terminal error (the spec or input must change): Failed, with the cause, never retried."""
    status = status.model_copy(deep=True)
    if status.attempts and status.attempts[-1].job_name is None:
        status.attempts[-1].submitting = None
        status.attempts[-1].error = JobError(code=code, message=message)
    return _fail(status, reason, message, now, generation)
