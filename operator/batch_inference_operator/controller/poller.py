"""One poller per operator: one LIST of live jobs per (project, location) per round, so Vertex calls do not
grow with the number of resources, and a GET only for a followed job that left the live list (it
finished, or its state is one this version does not know). A resource whose job changed is woken at once.

The interval adapts: `poll_interval` while any followed job runs or moved in the last round,
`queued_poll_interval` (2x by default) while all of them wait in Vertex's queue (nothing to show until
one starts)."""

from __future__ import annotations

import asyncio
import logging

from .. import metrics
from ..adapters.errors import AdapterError
from ..core.record import duplicates_event
from ..core.vertex_jobs import PENDING, QUEUED, ObservedJob
from . import executor
from .runtime import Runtime, Tracked

log = logging.getLogger("batch_inference_operator")
WAITING_STATES = frozenset({QUEUED, PENDING})
# GETs of jobs that left the live list, in flight at once in one round.
GETS_AT_ONCE = 8


async def poll_forever(runtime: Runtime) -> None:
    while True:
        moved = True
        try:
            with metrics.POLL_ROUND.time():
                moved = await poll_round(runtime)
        except Exception:  # a bad round must not stop polling; the next one tries again
            metrics.RECONCILE_ERRORS.labels("PollFailed").inc()
            log.exception("polling Vertex failed")
        await asyncio.sleep(next_interval(runtime, moved))


def next_interval(runtime: Runtime, moved: bool) -> float:
    """Short while jobs move; longer while every followed job waits in Vertex's queue."""
    settings = runtime.settings
    if moved:
        return settings.poll_interval
    followed = [runtime.observations.get(t.job_name) for t in runtime.tracked.values()]
    if followed and all(job is not None and job.state in WAITING_STATES for job in followed):
        return settings.queued_poll_interval
    return settings.poll_interval


async def poll_round(runtime: Runtime) -> bool:
    """One LIST of live jobs per (project, location) with followed jobs, limited to jobs created since the
    oldest one; a GET for each followed job the LIST no longer shows. Returns whether any job changed."""
    groups: dict[tuple[str, str], list[tuple[str, Tracked]]] = {}
    for uid, tracked in list(runtime.tracked.items()):
        groups.setdefault((tracked.project, tracked.location), []).append((uid, tracked))
    moved = False
    for (project, location), members in groups.items():
        times = [m.create_time for _, m in members]
        since = None if None in times else min(t for t in times if t is not None)
        try:
            live = {job.name: job for job in await runtime.vertex.list_managed(project, location, since)}
        except Exception as error:  # one group's failure (or an answer the SDK cannot parse) stops no other
            metrics.RECONCILE_ERRORS.labels("PollFailed").inc()
            log.warning("polling %s/%s failed: %s", project, location, getattr(error, "message", repr(error)))
            continue
        # A job seen finished is not read again (a finished job never changes) while its resource records it.
        known = {t.job_name: runtime.observations.get(t.job_name) for _, t in members if t.job_name not in live}
        done = {name: job for name, job in known.items() if job is not None and job.terminal}
        left = [(uid, t) for uid, t in members if t.job_name in known and t.job_name not in done]
        # Jobs that left the live list (finished, or a state we do not list) are read once each, a few at
        # a time: read one after another, hundreds finishing together made a round last many seconds.
        gate = asyncio.Semaphore(GETS_AT_ONCE)
        read = await asyncio.gather(*(read_job(runtime, gate, project, location, t.job_name) for _, t in left))
        found = {**done, **{t.job_name: job for (_, t), job in zip(left, read, strict=True) if job is not None}, **live}
        for uid, tracked in members:
            job = found.get(tracked.job_name)
            if job is not None and observe(runtime, job):
                moved = True
                runtime.wake(uid)
    await reap_duplicates(runtime)
    followed = {tracked.job_name for tracked in runtime.tracked.values()}
    for name in list(runtime.observations):
        if name not in followed:
            del runtime.observations[name]
    return moved


async def read_job(
    runtime: Runtime, gate: asyncio.Semaphore, project: str, location: str, name: str
) -> ObservedJob | None:
    async with gate:
        try:
            return await runtime.vertex.get(project, location, name)
        except AdapterError as error:
            log.warning("reading %s failed: %s", name, error.message)
            return None


def observe(runtime: Runtime, job: ObservedJob) -> bool:
    """Store what Vertex said of a job; True when it differs from what was known."""
    known = runtime.observations.get(job.name)
    runtime.observations[job.name] = job
    return known != job


async def reap_duplicates(runtime: Runtime) -> None:
    """For attempts whose create had an unknown outcome, look for a second job of the attempt (a create
    that landed late) for two settle windows, and cancel it at once: only completed rows are billed."""
    limit = runtime.clock() - 2 * runtime.settle
    for uid, tracked in list(runtime.tracked.items()):
        if tracked.duplicate_watch is None or (tracked.create_time is not None and tracked.create_time < limit):
            continue
        try:
            jobs = await runtime.vertex.find_by_labels(tracked.project, tracked.location, tracked.duplicate_watch)
            extra = [job for job in jobs if job.name != tracked.job_name]
            cancelled = await executor.cancel_each(runtime.vertex, tracked.project, tracked.location, extra)
        except AdapterError as error:
            log.warning("looking for duplicate jobs of %s failed: %s", uid, error.message)
            continue
        if cancelled:
            runtime.notices.setdefault(uid, []).append(duplicates_event(cancelled, tracked.job_name))
            runtime.wake(uid)
