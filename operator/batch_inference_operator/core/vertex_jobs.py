"""Vertex batch prediction jobs as plain values: what the operator asks for, what Vertex says, and what
each JobState means for the resource. The one place Vertex's state names are spelled."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..api import CompletionStats, JobError

SUCCEEDED = "JOB_STATE_SUCCEEDED"
PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
CANCELLING = "JOB_STATE_CANCELLING"
EXPIRED = "JOB_STATE_EXPIRED"
QUEUED = "JOB_STATE_QUEUED"
PENDING = "JOB_STATE_PENDING"
RUNNING = "JOB_STATE_RUNNING"
UPDATING = "JOB_STATE_UPDATING"
PAUSED = "JOB_STATE_PAUSED"
UNSPECIFIED = "JOB_STATE_UNSPECIFIED"

TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED, PARTIALLY_SUCCEEDED})
# States of a job worth adopting for a resource re-created with the same namespace, name and spec (whose
# previous owner is gone: names are unique, and labels identify the whole name): it ran or still runs, so
# paying again is waste. A paused or cancelling job is followed to its end and resumed from its output.
ADOPTABLE_STATES = frozenset({SUCCEEDED, PARTIALLY_SUCCEEDED, QUEUED, PENDING, RUNNING, UPDATING, PAUSED, CANCELLING})
# Job error codes that no resume can fix: the input was rejected (3), a bucket does not exist (9).
TERMINAL_JOB_CODES = frozenset({3, 9})
# Error code of a job whose input Vertex refused.
INVALID_INPUT_CODE = 3

# The phase of a resource whose job is in this state. Only RUNNING, QUEUED, PENDING and UPDATING read as
# Running or Pending; a state this version does not know reads as Unknown, never as Running.
PHASE_OF_STATE = {
    QUEUED: "Pending",
    PENDING: "Pending",
    RUNNING: "Running",
    UPDATING: "Running",
    CANCELLING: "Cancelling",
    PAUSED: "Paused",
    SUCCEEDED: "Succeeded",
    PARTIALLY_SUCCEEDED: "PartiallySucceeded",
    FAILED: "Failed",
    EXPIRED: "Failed",
    CANCELLED: "Cancelled",
}


@dataclass(frozen=True)
class JobRequest:
    """Everything a Vertex create call needs, in plain values."""

    project: str
    location: str
    model: str
    display_name: str
    input_uris: tuple[str, ...]
    output_uri: str
    labels: dict[str, str]


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
        return self.state in TERMINAL_STATES


def phase_of(state: str) -> str:
    return PHASE_OF_STATE.get(state, "Unknown")


def short_state(state: str) -> str:
    """JOB_STATE_PARTIALLY_SUCCEEDED -> partially succeeded."""
    return state.removeprefix("JOB_STATE_").lower().replace("_", " ")


def console_url(job_name: str, project: str) -> str:
    parts = job_name.split("/")
    location, job_id = parts[3], parts[-1]
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{location}/batch-predictions/{job_id}?project={project}"
    )


def summary(job: ObservedJob) -> str:
    """One line for status.message: the state, the counts, the error."""
    stats = job.stats
    counts = f" ({stats.successful} succeeded, {stats.failed} failed, {stats.incomplete} incomplete)" if stats else ""
    short = short_state(job.state)
    if job.error and job.state in (FAILED, CANCELLED):
        return f"Vertex job {short}{counts}: error {job.error.code}: {job.error.message}"
    if job.state == EXPIRED:
        return "Vertex job expired: it was not scheduled before Vertex's queue time limit"
    if job.state in (PENDING, QUEUED):
        return "Vertex job pending: waiting for capacity"
    if job.state == PAUSED:
        return (
            f"Vertex paused the job{counts}: it makes no progress until Vertex resumes it; the operator keeps "
            "following it. Set spec.suspend to true to cancel it and resume its unfinished requests later"
        )
    if job.state == CANCELLING:
        return f"Vertex job cancelling{counts}: rows completed so far are kept"
    if job.state not in PHASE_OF_STATE:
        return (
            f"Vertex reports the state {job.state!r}, which this operator version does not know; it keeps "
            f"following the job{counts}"
        )
    return f"Vertex job {short}{counts}"
