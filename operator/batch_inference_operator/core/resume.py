"""After an attempt ends: read its output once, then resume it (a new Vertex job fed its output), hold it
(suspended), or finish the resource with an honest phase."""

from __future__ import annotations

import datetime

from ..api import Attempt, BatchInferenceJobSpec, BatchInferenceJobStatus
from .actions import Decision, Event
from .advice import cache_advice
from .conditions import set_condition
from .manifest import fallback_rows, manifest_of, scan_of
from .record import describe_row_errors, phase_event
from .uris import BigQueryUri, is_bigquery, is_gcs, predictions_file
from .vertex_jobs import (
    CANCELLED,
    EXPIRED,
    FAILED,
    INVALID_INPUT_CODE,
    PARTIALLY_SUCCEEDED,
    SUCCEEDED,
    TERMINAL_JOB_CODES,
    ObservedJob,
    summary,
)
from .wording import plural


def output_for(spec: BatchInferenceJobSpec, input_uris: tuple[str, ...]) -> str:
    """Where an attempt writes. A resumed attempt reads the named output table it would write to; what
    Vertex does with an existing output table is not documented (appending would duplicate every carried
    row), so it writes a new table in that dataset instead. That table holds every row, the carried ones
    too, and status.outputLocation follows it."""
    table = spec.output.bigquery.table if spec.output.bigquery else None
    if table and table in input_uris:
        return BigQueryUri.parse(table).dataset_uri
    return spec.output.uri()


def has_readable_output(attempt: Attempt) -> bool:
    location = attempt.output_location or ""
    return bool((is_gcs(location) or is_bigquery(location)) and attempt.start_time)


def after_attempt(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A terminal attempt: read its output first (once), then settle it."""
    if current.rows is None and has_readable_output(current):
        status.message = f"attempt {current.attempt} ended; reading its output"
        return Decision(status, actions=[scan_of(spec, current)])
    return settle(spec, status, current, now, generation)


def resumable(attempt: Attempt, retry: str) -> bool:
    state = attempt.state
    if attempt.missing and attempt.missing_input and state != FAILED:
        return True  # input rows in no output row: resubmitted beside the output
    if state == FAILED:
        return not (attempt.error and attempt.error.code in TERMINAL_JOB_CODES)
    if state in (CANCELLED, EXPIRED, PARTIALLY_SUCCEEDED):
        return True
    if state == SUCCEEDED:
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


def unfinished(attempt: Attempt) -> int:
    if attempt.rows is not None:
        rows = attempt.rows
        return rows.failed_transient + rows.failed_permanent + rows.incomplete + (attempt.missing or 0)
    stats = attempt.completion_stats
    return (stats.failed + stats.incomplete) if stats else 0


def attempts_used(status: BatchInferenceJobStatus) -> int:
    """Attempts that count toward resume.maxAttempts: those cancelled to suspend do not; a resubmitted one
    (it never started) does, so a job that never gets capacity is not resubmitted forever."""
    rerun = status.rerun
    first = 1
    if rerun is not None and rerun.state == "Started" and rerun.attempt:
        first = rerun.attempt  # a re-run has its own maxAttempts
    return sum(
        1
        for attempt in status.attempts
        if attempt.attempt >= first and (not attempt.cancel_requested or attempt.resubmit)
    )


def hold(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> Decision:
    """Suspended between attempts: the unfinished requests wait until spec.suspend is false."""
    previous = status.phase
    status.phase = "Suspended"
    status.message = "suspended: set spec.suspend to false to resume the unfinished requests"
    set_condition(status, "Suspended", True, "Suspended", status.message, now, generation)
    set_condition(status, "Ready", False, "Suspended", status.message, now, generation)
    events: list[Event] = []
    phase_event(previous, status, events)
    return Decision(status, events=events)


def settle(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A finished attempt: resume it, hold it (suspended), or finish the resource."""
    previous = status.phase
    events: list[Event] = []
    used = attempts_used(status)
    if current.cancel_requested and current.state == CANCELLED:
        if spec.suspend and not current.resubmit:
            return hold(status, now, generation)
        if not current.resubmit or used < spec.resume.max_attempts:
            return next_attempt(spec, status, current, now, generation)
        return finish_with_manifest(spec, status, current, now, generation, previous)
    if resumable(current, spec.resume.retry_failed_requests) and used < spec.resume.max_attempts:
        if spec.suspend:
            return hold(status, now, generation)
        resume_at = (current.end_time or now) + datetime.timedelta(seconds=spec.resume.backoff_seconds)
        if now < resume_at:
            status.phase = "Resuming"
            status.message = (
                (
                    f"attempt {current.attempt} ended {current.state.removeprefix('JOB_STATE_').lower()}"
                    f" with {plural(unfinished(current), 'unfinished request')}; attempt {current.attempt + 1} "
                    f"starts at {resume_at.strftime('%H:%M:%SZ')}"
                )
                if current.state
                else status.message
            )
            set_condition(status, "Ready", False, "Resuming", status.message or "", now, generation)
            phase_event(previous, status, events)
            return Decision(status, events=events, requeue_after=(resume_at - now).total_seconds())
        return next_attempt(spec, status, current, now, generation)
    return finish_with_manifest(spec, status, current, now, generation, previous)


def finish_with_manifest(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
    previous: str | None,
) -> Decision:
    """Write the results manifest first (while the phase is not final, so a failed write is retried), then
    finish."""
    write = manifest_of(spec, status)
    if write is not None:
        status.message = f"attempt {current.attempt} ended; writing the results manifest {write.uri}"
        return Decision(status, actions=[write])
    return finish(status, current, now, generation, previous)


def next_attempt(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """A new Vertex job fed the previous output (Vertex re-runs only unfinished rows and carries the rest);
    the original input when the previous job never ran."""
    output = current.output_location
    if current.start_time and output:
        source = [predictions_file(output)] if is_gcs(output) else [output]
        if current.missing and current.missing_input:
            source.append(current.missing_input)  # rows in no output: run beside the carried ones
    else:
        source = spec.input.uris()
    number = current.attempt + 1
    status.attempts.append(Attempt(attempt=number, submitting=now, input=source))
    status.attempt = number
    status.phase = "Resuming"
    status.message = (
        f"attempt {number} of {spec.resume.max_attempts}: resuming "
        f"{plural(unfinished(current), 'unfinished request') if unfinished(current) else 'the unfinished requests'} "
        f"from {source[0]}"
    )
    set_condition(status, "Suspended", False, "NotSuspended", "", now, generation)
    set_condition(status, "Ready", False, "Resuming", status.message, now, generation)
    return Decision(status, events=[Event("Normal", "Resuming", status.message)])


def succeeded_rows(attempt: Attempt) -> int | None:
    """Rows that succeeded, from the output when it was read, else from Vertex's counts (None: unknown)."""
    if attempt.rows is not None:
        return attempt.rows.succeeded
    return attempt.completion_stats.successful if attempt.completion_stats else None


def finish(
    status: BatchInferenceJobStatus, current: Attempt, now: datetime.datetime, generation: int, previous: str | None
) -> Decision:
    """The resource's final phase, told honestly: a job in which no request succeeded has failed, whatever
    Vertex's job state says; one with failed rows left is PartiallySucceeded."""
    state = current.state or ""
    remaining = unfinished(current)
    if status.rows is not None and current.rows is not None:
        # The manifest joined this attempt's output: it also finds rows no count shows (a BigQuery output's).
        remaining = max(remaining, status.rows.failed + status.rows.missing)
    nothing_succeeded = state in (SUCCEEDED, PARTIALLY_SUCCEEDED) and succeeded_rows(current) == 0
    if nothing_succeeded:
        phase = "Failed"
    elif state == SUCCEEDED:
        phase = "PartiallySucceeded" if remaining else "Succeeded"
    elif state == PARTIALLY_SUCCEEDED:
        phase = "PartiallySucceeded"
    elif state == CANCELLED:
        phase = "Cancelled"
    else:
        phase = "Failed"
    status.phase = phase  # type: ignore[assignment]
    job = ObservedJob(name=current.job_name or "", state=state, error=current.error, stats=current.completion_stats)
    status.message = summary(job)
    if nothing_succeeded:
        status.message = (
            f"no request succeeded: {plural(remaining, 'request')} failed or did not run (Vertex job {state})"
        )
    if current.attempt > 1:
        status.message += f" after {plural(current.attempt, 'attempt')}"
    if remaining and phase == "PartiallySucceeded":
        status.message += f"; {plural(remaining, 'request')} did not succeed"
    if current.row_errors and phase in ("PartiallySucceeded", "Failed"):
        status.message += f"; for example {describe_row_errors(current.row_errors)}"
    status.completion_time = status.completion_time or current.end_time or now
    status.rows = status.rows or fallback_rows(status)  # no manifest: no output was ever written
    events: list[Event] = []
    if phase in ("Succeeded", "PartiallySucceeded"):
        set_condition(status, "Complete", True, phase, status.message, now, generation)
        set_condition(status, "Failed", False, phase, "", now, generation)
        set_condition(status, "Ready", True, phase, status.message, now, generation)
    else:
        code = current.error.code if current.error else None
        reason = {EXPIRED: "Expired", CANCELLED: "Cancelled"}.get(
            state, "InvalidInput" if code == INVALID_INPUT_CODE else "VertexJobFailed"
        )
        if nothing_succeeded:
            reason = "NoRequestSucceeded"
        set_condition(status, "Failed", True, reason, status.message, now, generation)
        set_condition(status, "Complete", False, reason, status.message, now, generation)
        set_condition(status, "Ready", False, reason, status.message, now, generation)
    set_condition(status, "Finished", True, phase, status.message, now, generation)
    for transient in ("Stalled", "Paused"):  # a finished job is neither
        if any(c.type == transient and c.status == "True" for c in status.conditions):
            set_condition(status, transient, False, phase, "", now, generation)
    phase_event(previous, status, events)
    if nothing_succeeded and events:
        events[-1] = Event("Warning", "NoRequestSucceeded", status.message)
    events += cache_advice(status)
    return Decision(status, events=events)
