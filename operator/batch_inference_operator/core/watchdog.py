"""The stall watchdog: a job that waits in Vertex's queue, or runs without progress, longer than allowed.

Users' most common complaint about batch jobs is one stuck for a day with nothing saying so. Pure: the
job, its attempt, the limits and the time in; a finding out (the decision sets the condition).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..api import Attempt, StallSpec
from .vertex_jobs import PENDING, QUEUED, RUNNING, ObservedJob

DEFAULT_QUEUED_AFTER = 12 * 3600
DEFAULT_RUNNING_AFTER = 6 * 3600


@dataclass(frozen=True)
class StallLimits:
    """The operator's defaults (BIJ_STALL_QUEUED_AFTER, BIJ_STALL_RUNNING_AFTER), for specs that set none."""

    queued_after: int = DEFAULT_QUEUED_AFTER
    running_after: int = DEFAULT_RUNNING_AFTER


@dataclass(frozen=True)
class Stall:
    reason: str  # QueuedTooLong | NoProgress
    message: str
    never_started: bool


def _span(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def stall_of(
    job: ObservedJob,
    attempt: Attempt,
    spec: StallSpec,
    limits: StallLimits,
    now: datetime.datetime,
    counts_move: bool = True,
) -> Stall | None:
    """The stall of this job, if it is stalled now. `counts_move`: Vertex reports progress while the job
    runs (not for BigQuery outputs, whose counts arrive at the end), so standing counts mean no progress."""
    if job.state in (QUEUED, PENDING) and job.create_time is not None:
        limit = spec.queued_after_seconds or limits.queued_after
        waited = (now - job.create_time).total_seconds()
        if waited >= limit:
            return Stall(
                "QueuedTooLong",
                f"the Vertex job has waited {_span(waited)} in Vertex's queue without starting (limit "
                f"{_span(limit)}, spec.stall.queuedAfterSeconds); Vertex expires jobs that wait 72 h. Capacity "
                "for the model in this location is short: wait, or try another location",
                never_started=True,
            )
    if job.state == RUNNING and attempt.progress_time is not None and counts_move:
        limit = spec.running_after_seconds or limits.running_after
        still = (now - attempt.progress_time).total_seconds()
        if still >= limit:
            stats = job.stats
            counts = f" at {stats.successful} succeeded, {stats.failed} failed" if stats else ""
            return Stall(
                "NoProgress",
                f"the Vertex job has run {_span(still)} without its completion counts moving{counts} (limit "
                f"{_span(limit)}, spec.stall.runningAfterSeconds)",
                never_started=False,
            )
    return None


def progressed(attempt: Attempt, job: ObservedJob) -> bool:
    """Whether this observation shows progress since the last: the job entered RUNNING, or its counts moved."""
    if job.state != RUNNING:
        return False
    return (
        attempt.state != RUNNING
        or attempt.progress_time is None  # followed since before this field existed: start counting now
        or (job.stats is not None and job.stats != attempt.completion_stats)
    )
