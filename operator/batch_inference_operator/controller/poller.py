"""One poller per operator: one label-filtered LIST per (project, location) per round, so Vertex calls do
not grow with the number of resources. The resources' timers read what it stored."""

from __future__ import annotations

import asyncio
import logging

from .. import metrics
from ..adapters.errors import AdapterError
from ..core.record import duplicates_event
from . import executor
from .runtime import Runtime, Tracked

log = logging.getLogger("batch_inference_operator")


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
        except Exception as error:  # one group's failure (or an answer the SDK cannot parse) stops no other
            metrics.RECONCILE_ERRORS.labels("PollFailed").inc()
            log.warning("polling %s/%s failed: %s", project, location, getattr(error, "message", repr(error)))
            continue
        for job in jobs:
            runtime.observations[job.name] = job
    await reap_duplicates(runtime)
    followed = {tracked.job_name for tracked in runtime.tracked.values()}
    for name in list(runtime.observations):
        if name not in followed:
            del runtime.observations[name]


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
