"""Status updates from what the controller learnt: a job found or created, a preflight report, an output
read, a recoverable or a terminal error. Also the vocabulary of failures (reasons, codes, messages), so
the controller carries no text of its own."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Literal

from ..api import (
    Attempt,
    BatchInferenceJobStatus,
    Estimate,
    JobError,
    JobRef,
    PreflightReport,
    RowCounts,
    RowError,
    Shard,
    Usage,
)
from ..api.meta import RERUN_ANNOTATION
from .actions import Decision, Event
from .conditions import set_condition
from .permissions import PERMISSION_DENIED_CODE
from .uris import is_bigquery
from .vertex_jobs import ObservedJob, console_url
from .wording import plural

# The code a terminal error of Cloud Storage or BigQuery is recorded with (google.rpc.Code NOT_FOUND).
NOT_FOUND_CODE = 5


# Phases a user should look at: posted as Warning Events.
WARNING_PHASES = frozenset({"Failed", "Cancelled", "Paused", "Unknown"})


def phase_event(previous: str | None, status: BatchInferenceJobStatus, events: list[Event]) -> None:
    """One Event per phase change (Pending is not worth one)."""
    if status.phase != previous and status.phase not in ("Pending",):
        kind: Literal["Normal", "Warning"] = "Warning" if status.phase in WARNING_PHASES else "Normal"
        reason = "UnknownJobState" if status.phase == "Unknown" else status.phase or ""
        events.append(Event(kind, reason, status.message or ""))


def describe_row_errors(errors: Sequence[RowError]) -> str:
    """Sample failed rows for a message: `line 3: 400 Please use a valid role`."""
    parts = []
    for error in errors:
        where = f"line {error.line}: " if error.line is not None else ""
        code = f"{error.code} " if error.code is not None else ""
        parts.append(f"{where}{code}{error.message}")
    return "; ".join(parts)


def fail(
    status: BatchInferenceJobStatus, reason: str, message: str, now: datetime.datetime, generation: int
) -> Decision:
    """The resource fails for good: phase, message, conditions and a Warning Event."""
    status.phase = "Failed"
    status.message = message
    status.completion_time = status.completion_time or now
    set_condition(status, "Failed", True, reason, message, now, generation)
    set_condition(status, "Complete", False, reason, message, now, generation)
    set_condition(status, "Ready", False, reason, message, now, generation)
    set_condition(status, "Finished", True, "Failed", message, now, generation)
    return Decision(status, events=[Event("Warning", reason, message)])


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


def record_uncertain_create(
    status: BatchInferenceJobStatus,
    attempt: int,
    error_message: str,
    until: datetime.datetime,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A create whose outcome is unknown: the job may exist. Say so, and that no second create is sent
    before `until`, and only if a lookup by this attempt's labels then finds nothing."""
    status, entry = _with_attempt(status, attempt)
    entry.uncertain_creates = (entry.uncertain_creates or 0) + 1
    message = (
        f"{error_message}; the job may have been created anyway: no second create for attempt {attempt} "
        f"before {until.strftime('%H:%M:%SZ')}, and only if no job of this attempt shows up by then"
    )
    status.message = message
    set_condition(status, "Ready", False, "CreateUncertain", message, now, generation)
    return Decision(status, events=[Event("Warning", "CreateUncertain", message)])


def record_create_wait(
    status: BatchInferenceJobStatus, attempt: int, until: datetime.datetime
) -> BatchInferenceJobStatus:
    """Waiting out the settle window of an earlier create (or of a marker written before a restart)."""
    status = status.model_copy(deep=True)
    status.message = (
        f"waiting until {until.strftime('%H:%M:%SZ')} for an earlier create of attempt {attempt} to show up "
        "before creating it (never two paid jobs for one attempt)"
    )
    return status


def record_new_marker(status: BatchInferenceJobStatus, attempt: int, now: datetime.datetime) -> BatchInferenceJobStatus:
    """No job of this attempt exists (after the settle window, or nothing was sent for a marker that grew
    too old): write a new marker; the create follows it."""
    status, entry = _with_attempt(status, attempt)
    entry.submitting = now
    status.message = f"attempt {attempt} has no Vertex job: a new submit marker is written, then the job is created"
    return status


def duplicates_event(names: Sequence[str], kept: str) -> Event:
    return Event(
        "Warning",
        "DuplicateJobCancelled",
        f"cancelled {', '.join(names)}: a second Vertex job for one attempt (a create that landed late); "
        f"kept {kept}. Only completed rows are billed, so a duplicate cancelled early costs little or nothing",
    )


def adopted_event(job_name: str) -> Event:
    return Event("Normal", "Adopted", f"adopted the existing Vertex job {job_name} instead of creating another")


def record_preflight(
    status: BatchInferenceJobStatus,
    report: PreflightReport,
    estimate: Estimate | None = None,
    shards: Sequence[Shard] = (),
) -> BatchInferenceJobStatus:
    """The input passed: its report, the cost estimate, and the shards it was split into (none: one job)."""
    status = status.model_copy(deep=True)
    status.preflight = report
    status.estimate = estimate
    status.shards = list(shards)
    return status


def preflight_passed_event(report: PreflightReport, uris: tuple[str, ...]) -> Event:
    where = f"the table {uris[0]}" if is_bigquery(uris[0]) else plural(report.files, "file")
    message = f"input checked: {plural(report.requests, 'request')} in {where}"
    if report.shared_prefix_requests is not None:
        message += f", {report.shared_prefix_requests} sharing a long prompt prefix"
    return Event("Normal", "PreflightPassed", message)


def record_scan(
    status: BatchInferenceJobStatus,
    attempt: int,
    usage: Usage,
    rows: RowCounts,
    errors: Sequence[RowError] = (),
) -> BatchInferenceJobStatus:
    """A finished attempt's output was read: its row outcomes, sample failed rows, and usage (its output
    holds every row, the carried ones too)."""
    status, entry = _with_attempt(status, attempt)
    entry.rows = rows
    entry.row_errors = list(errors)
    status.usage = usage
    status.row_errors = list(errors)
    return status


def record_no_output(status: BatchInferenceJobStatus, attempt: int) -> BatchInferenceJobStatus:
    """A finished attempt's output cannot be read (none was written, or it is gone): its outcome stays
    Vertex's completion counts, and a resume starts from the input."""
    status, entry = _with_attempt(status, attempt)
    missing = entry.output_location
    entry.rows = None  # not read: Vertex's completion counts stand (a success is not turned into a failure)
    entry.output_location = None
    if status.output_location == missing:  # point at the latest output that exists, if any
        existing = [a.output_location for a in status.attempts if a.output_location]
        status.output_location = existing[-1] if existing else None
    return status


def record_cancel_not_made(status: BatchInferenceJobStatus, attempt: int) -> BatchInferenceJobStatus:
    """A cancel (to suspend, or to resubmit a stalled job) that failed: the attempt no longer says it was
    cancelled, so the next decision asks for the cancel again instead of waiting on a job that runs on."""
    status, entry = _with_attempt(status, attempt)
    entry.cancel_requested = None
    entry.resubmit = None
    return status


def record_retry(
    status: BatchInferenceJobStatus, message: str, now: datetime.datetime, generation: int
) -> BatchInferenceJobStatus:
    """A recoverable error: say so in status; the controller retries after a backoff."""
    status = status.model_copy(deep=True)
    status.message = message
    set_condition(status, "Ready", False, "Retrying", message, now, generation)
    return status


def retry_decision(
    status: BatchInferenceJobStatus,
    error_message: str,
    delay: float,
    submitting: bool,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A recoverable error met while performing an action: the message, and a Warning Event. The text
    is the same on every retry of one problem (the delay is not in it), so the status is not rewritten
    per retry and the Event aggregates into one with a count (controller/kube.py)."""
    del delay  # in the log and the requeue, not in the text
    message = f"{error_message}; retrying with backoff"
    reason = "RetryingSubmit" if submitting else "Retrying"
    return Decision(record_retry(status, message, now, generation), events=[Event("Warning", reason, message)])


def record_permission_denied(
    status: BatchInferenceJobStatus,
    error_message: str,
    advice: str,
    delay: float,
    tries: tuple[int, int | None],
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A 403: the Ready condition says which role to grant (reason PermissionDenied, the Reason column), a
    Warning Event too; retried, since a grant heals it, and after `tries` (done, limit) the resource fails
    instead of waiting Pending forever (limit None: retried as long as it takes)."""
    done, limit = tries
    if limit is not None and done >= limit:
        message = (
            f"{error_message}: {advice}. Gave up after {plural(done, 'try')}; once granted, re-run the job "
            f"by giving its annotation {RERUN_ANNOTATION} a new value"
        )
        return record_failure(status, "PermissionDenied", PERMISSION_DENIED_CODE, message, now, generation)
    shown = f" (try {done} of {limit})" if limit is not None else ""
    message = f"{error_message}: {advice}; retrying in {delay:.0f}s{shown}"
    status = record_retry(status, message, now, generation)
    set_condition(status, "Ready", False, "PermissionDenied", message, now, generation)
    return Decision(status, events=[Event("Warning", "PermissionDenied", message)])


def failure_reason(reason: str | None, code: int | None) -> tuple[str, int]:
    """Reason and code of a terminal error: a reason the adapter named (an input missing or rejected)
    wins; otherwise Vertex's HTTP code says which mistake it was."""
    if reason:
        return reason, NOT_FOUND_CODE if code is None else code
    code = code or 0
    return ("UnknownModel" if code == 404 else "InvalidArgument" if code == 400 else "SubmitFailed"), code


def record_invalid_spec_of_live_job(
    status: BatchInferenceJobStatus, problem: str, now: datetime.datetime, generation: int
) -> Decision:
    """The spec no longer validates, but a Vertex job of this resource runs: report it, fail nothing."""
    status = status.model_copy(deep=True)
    message = (
        f"the spec does not pass this operator version's validation ({problem}); its Vertex job keeps running "
        "and is still followed, but nothing else is decided until the spec is fixed or the resource deleted"
    )
    status.message = message
    set_condition(status, "Ready", False, "InvalidSpec", message, now, generation)
    return Decision(status, events=[Event("Warning", "InvalidSpec", message)])


def record_failure(
    status: BatchInferenceJobStatus, reason: str, code: int, message: str, now: datetime.datetime, generation: int
) -> Decision:
    """A terminal error (the spec or input must change): Failed, with the cause, never retried."""
    status = status.model_copy(deep=True)
    if status.attempts and status.attempts[-1].job_name is None:
        status.attempts[-1].submitting = None
        status.attempts[-1].error = JobError(code=code, message=message)
    return fail(status, reason, message, now, generation)


def record_create_queued(
    before: BatchInferenceJobStatus,
    decision: Decision,
    project: str,
    location: str,
    wait: float,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """`after` would store a submitting marker, but no create slot is free in this project/location (the
    operator paces creates): keep `after` without the marker, in phase Queued, and try again in `wait`
    seconds. No marker is stored while waiting, so none ages (core/exactly_once.py). The Events of the
    submit itself (Accepted, Resuming) wait for it; the others (a preflight passed) are kept."""
    status = decision.status.model_copy(deep=True)
    latest = status.attempts[-1]
    earlier = next((a for a in before.attempts if a.attempt == latest.attempt), None)
    if earlier is None:
        status.attempts.pop()
        status.attempt = before.attempt
    else:
        latest.submitting = earlier.submitting
    previous = before.phase
    status.phase = "Queued"
    status.message = f"waiting for a create slot: the operator paces Vertex job creation in {project}/{location}"
    set_condition(status, "Ready", False, "CreatePaced", status.message, now, generation)
    events = [event for event in decision.events if event.reason not in ("Accepted", "Resuming")]
    phase_event(previous, status, events)
    return Decision(status, events=events, requeue_after=wait)
