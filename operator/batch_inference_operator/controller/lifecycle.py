"""One resource's turn, as kopf's handlers call it: decide, act, write status, post Events, tell the poller
what to follow; and its release when it is deleted (cancel or abandon its Vertex job, bounded in time)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from .. import metrics
from ..adapters.errors import AdapterError
from ..api import TERMINAL_PHASES, BatchInferenceJobSpec, BatchInferenceJobStatus, parse_spec
from ..core.actions import Decision, Event
from ..core.admission import Queue
from ..core.decide import decide
from ..core.exactly_once import release_wait
from ..core.identity import Resource, attempt_labels, owner_labels
from ..core.policy import Tenancy
from ..core.pricing import model_id
from ..core.record import record_create_queued, record_failure, record_invalid_spec_of_live_job
from ..core.shards import decide_parent
from ..core.vertex_jobs import TERMINAL_STATES
from . import executor, parents
from .kube import StatusConflict, StatusWriter, WriteFailed
from .parents import Family
from .runtime import Marker, Runtime, Tracked
from .status_patch import internal_error_patch, status_diff

log = logging.getLogger("batch_inference_operator")


@dataclasses.dataclass
class Turn:
    """What one turn did: Events to post, and when to decide again with nothing else happening."""

    events: list[Event]
    requeue_after: float | None = None


async def write_status(
    runtime: Runtime,
    writer: StatusWriter,
    resource: Resource,
    stored: dict[str, Any],
    new: BatchInferenceJobStatus,
) -> dict[str, Any] | None:
    """Patch only what changed (None when nothing did: no write at all); returns the stored object."""
    diff = status_diff(stored, new)
    if not diff:
        return None
    written = await writer.patch_status(resource.namespace, resource.name, diff, None)
    runtime.expect(resource.uid, new)
    return written


async def reconcile_resource(
    runtime: Runtime,
    body: Mapping[str, Any],
    writer: StatusWriter,
    resource: Resource,
    created: str,
    tenancy: Tenancy,
    queue: Queue,
    family: Family | None = None,
) -> Turn:
    """One turn for one resource. Any exception ends in a condition, an Event and a backoff, never in
    a traceback retried forever with nothing on the resource."""
    old = {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}
    try:
        return await _reconcile(runtime, body, writer, old, resource, created, tenancy, queue, family or Family())
    except StatusConflict as conflict:  # the object moved on under this turn: its watch event brings the next
        log.debug("%s/%s changed under its turn: %s", resource.namespace, resource.name, conflict)
        return Turn([], runtime.settings.retry_base)
    except WriteFailed as error:
        delay = runtime.delay_for(resource.uid)
        log.warning("writing the status of %s/%s failed: %s", resource.namespace, resource.name, error)
        return Turn([], delay)
    except Exception as error:
        log.exception("reconciling %s/%s failed", resource.namespace, resource.name)
        metrics.RECONCILE_ERRORS.labels("InternalError").inc()
        delay = runtime.fault(resource.uid)
        message = (
            f"the operator met an unexpected error ({type(error).__name__}: {error}); retrying with backoff. "
            "This is a bug: please report it with the operator's log"
        )
        patch = internal_error_patch(old, message, runtime.clock())
        try:
            await writer.patch_status(resource.namespace, resource.name, patch, None)
        except (StatusConflict, WriteFailed) as failed:
            log.warning("writing the error of %s/%s failed: %s", resource.namespace, resource.name, failed)
        return Turn([Event("Warning", "InternalError", message)], delay)


async def _reconcile(
    runtime: Runtime,
    body: Mapping[str, Any],
    writer: StatusWriter,
    old: dict[str, Any],
    resource: Resource,
    created: str,
    tenancy: Tenancy,
    queue: Queue,
    family: Family,
) -> Turn:
    current = BatchInferenceJobStatus.model_validate(old)
    try:
        spec = parse_spec(dict(body.get("spec") or {}))
    except ValueError as error:
        live = bool(current.attempts and current.attempts[-1].job_name) and current.phase not in TERMINAL_PHASES
        if live:
            # A spec this version's validation refuses, on a resource whose Vertex job already runs (created
            # by an earlier version with looser rules): failing it would stop following a paid job. Say so,
            # keep the job tracked (deleting the resource still cancels it), decide nothing else.
            decision = record_invalid_spec_of_live_job(current, str(error), runtime.clock(), resource.generation)
            track(runtime, resource.uid, current)
        else:
            decision = record_failure(current, "InvalidSpec", 0, str(error), runtime.clock(), resource.generation)
        if current.phase == "Failed" or await write_status(runtime, writer, resource, old, decision.status) is None:
            return Turn([])
        return Turn(decision.events)
    if current.shards:  # a parent: its children run the shards (core/shards.py); it never creates a Vertex job
        wire = dict(body.get("spec") or {})
        planned = decide_parent(spec, wire, current, resource, family.children, family.taken, runtime.clock())
        if planned.manifest is not None:  # every shard ended: the manifest first, then the final phase
            written, noted = await executor.write_manifest(runtime, planned.status, planned.manifest)
            final = decide_parent(spec, wire, written, resource, family.children, family.taken, runtime.clock())
            planned = dataclasses.replace(final, events=planned.events + noted + final.events)
        failures, failed = await parents.act(runtime.kube, resource.namespace, planned)
        await write_status(runtime, writer, resource, old, planned.status)
        metrics.move(runtime.phases.get(resource.uid), planned.status.phase)
        runtime.phases[resource.uid] = planned.status.phase
        if not failed:
            runtime.backoff.pop(resource.uid, None)
        return Turn(planned.events + failures, runtime.delay_for(resource.uid) if failed else None)
    job_name = current.attempts[-1].job_name if current.attempts else None
    observed = runtime.observations.get(job_name or "")
    decision = decide(spec, current, observed, resource, tenancy, runtime.clock(), queue, created)
    events: list[Event] = []
    stored, before = old, current
    permit: tuple[str, str] | None = None
    try:
        for _ in range(MARKER_ROUNDS):
            marker = new_marker(before, decision.status)
            if marker is not None:
                if permit is None:
                    key = (decision.status.project or "", decision.status.location or "")
                    wait = await runtime.limiter.slot(key, resource.uid, PACE_PATIENCE)
                    if wait > 0:  # no create slot: Queued, without the marker, until one frees
                        decision = record_create_queued(
                            before, decision, *key, wait, runtime.clock(), resource.generation
                        )
                        break
                    permit = key
                # The submit protocol's first step: the marker is stored, and the store said so, before
                # any create is sent; the create follows in this very turn (core/exactly_once.py). Only
                # this operator writes status, one turn at a time per resource, and a turn never decides
                # from a body older than its own last write (Runtime.stale): no resourceVersion
                # precondition, which kopf's own metadata writes would turn into needless conflicts.
                written = await write_status(runtime, writer, resource, stored, decision.status)
                if written is not None:
                    stored = {k: v for k, v in (written.get("status") or {}).items() if k != "kopf"}
                runtime.fresh[resource.uid] = marker
                events += decision.events
                before = decision.status
                decision = decide(spec, before, observed, resource, tenancy, runtime.clock(), queue, created)
            decision = await executor.act(runtime, decision, spec, resource, tenancy, queue, created)
            if new_marker(before, decision.status) is None:
                break
    finally:
        if permit is not None:
            runtime.limiter.release(permit)
    runtime.recovered(resource.uid)
    await write_status(runtime, writer, resource, stored, decision.status)
    track(runtime, resource.uid, decision.status)
    count(runtime, resource, spec, current, decision)
    return Turn(events + decision.events + runtime.notices.pop(resource.uid, []), decision.requeue_after)


# Seconds a turn waits in place for a create slot before it says Queued (and waits outside its turn).
PACE_PATIENCE = 1.0
# A turn writes at most this many markers before its create (a first one, or one replacing a marker
# whose settle window has passed).
MARKER_ROUNDS = 3


def new_marker(before: BatchInferenceJobStatus, after: BatchInferenceJobStatus) -> Marker | None:
    """The `submitting` marker `after` sets that `before` has not: one to store before its create.
    `first`: the attempt had no marker and no job, so no create was ever sent for it."""
    latest = after.attempts[-1] if after.attempts else None
    if latest is None or latest.job_name is not None or latest.submitting is None:
        return None
    earlier = next((a for a in before.attempts if a.attempt == latest.attempt), None)
    if earlier is not None and earlier.submitting == latest.submitting:
        return None
    first = earlier is None or (earlier.submitting is None and earlier.job_name is None)
    return Marker(latest.submitting, first)


def count(
    runtime: Runtime,
    resource: Resource,
    spec: BatchInferenceJobSpec,
    before: BatchInferenceJobStatus,
    decision: Decision,
) -> None:
    after = decision.status
    metrics.move(runtime.phases.get(resource.uid), after.phase)
    runtime.phases[resource.uid] = after.phase
    metrics.RESUMES.inc(sum(1 for event in decision.events if event.reason == "Resuming"))
    for condition in after.conditions:
        if (
            condition.type == "Stalled"
            and condition.status == "True"
            and any(event.reason == "Stalled" for event in decision.events)
        ):
            metrics.STALLED.labels(condition.reason).inc()
    finished = after.phase in TERMINAL_PHASES and before.phase not in TERMINAL_PHASES
    # A concurrency slot (BIJ_MAX_CONCURRENT_JOBS) may have freed: resources waiting for one decide again
    # now. Without that limit Queued means paced creates, whose waits the limiter times: no wake-ups (a
    # thousand of them per finished job were a thousand turns each).
    if finished and runtime.settings.max_concurrent_jobs > 0:
        for uid, phase in list(runtime.phases.items()):
            if phase == "Queued":
                runtime.wake(uid)
    if finished and after.usage is not None:
        metrics.record_usage(after.usage, model_id(spec.model), resource.namespace)


def track(runtime: Runtime, uid: str, status: BatchInferenceJobStatus) -> None:
    """Tell the poller which jobs to follow: the latest attempt's, until the resource is finished (or
    released: a turn that was running when the resource was deleted must not bring it back)."""
    if uid in runtime.released:
        return
    job = status.attempts[-1].job_name if status.attempts else None
    if status.phase in TERMINAL_PHASES or job is None or not status.project or not status.location:
        runtime.tracked.pop(uid, None)
        return
    create_time = status.job.create_time if status.job else None
    latest = status.attempts[-1]
    watch = attempt_labels(uid, latest.attempt) if latest.uncertain_creates else None
    runtime.tracked[uid] = Tracked(status.project, status.location, job, create_time, watch)


@dataclasses.dataclass
class Release:
    """What deleting a resource did: Events to post, and when to look again (a create may still land)."""

    events: list[Event]
    again_in: float | None = None


async def release_resource(runtime: Runtime, body: kopf.Body, uid: str, retry: int = 0) -> Release:
    """The resource is being deleted: cancel its unfinished Vertex jobs (deletionPolicy Cancel) or leave
    them (Abandon); give up after `finalizer_timeout` rather than block the namespace forever.

    Jobs are found by the resource's uid label and by the names in its attempts (an adopted job of an
    earlier resource carries that resource's uid). While a create of the latest attempt may still land
    (core/exactly_once.release_wait), the finalizer stays and every look cancels what has landed, so a
    late job is cancelled, not left running with no resource."""
    fresh = runtime.fresh.get(uid)
    runtime.forget(uid)
    metrics.move(runtime.phases.pop(uid, None), None)
    raw, spec, meta = body.get("status") or {}, body.get("spec") or {}, body.get("metadata") or {}
    project, location = raw.get("project"), raw.get("location")
    if raw.get("phase") in TERMINAL_PHASES or not project or not location or not raw.get("attempts"):
        return Release([])
    if spec.get("deletionPolicy", "Cancel") == "Abandon":
        message = "deletionPolicy is Abandon: the Vertex job keeps running; its output stays"
        return Release([Event("Normal", "Abandoned", message)])
    deleted_at = meta.get("deletionTimestamp")
    started = _timestamp(deleted_at) if deleted_at else runtime.clock()
    out_of_time = (runtime.clock() - started).total_seconds() >= runtime.settings.finalizer_timeout
    referenced = [
        a["jobName"] for a in raw.get("attempts") or [] if a.get("jobName") and a.get("state") not in TERMINAL_STATES
    ]
    try:
        cancelled = await executor.cancel_all(runtime.vertex, project, location, owner_labels(uid))
        for name in referenced:
            if name not in cancelled:
                await executor.cancel(runtime.vertex, project, location, name)
                cancelled.append(name)
    except AdapterError as error:
        if not error.retryable or out_of_time:
            message = (
                f"could not cancel the Vertex job ({error.message}); releasing the resource anyway, "
                "the job may still run"
            )
            return Release([Event("Warning", "FinalizerGaveUp", message)])
        raise kopf.TemporaryError(error.message, delay=min(runtime.settings.retry_max, 10)) from error
    events = []
    if cancelled:
        message = f"cancelled Vertex job {', '.join(cancelled)} (deletionPolicy Cancel)"
        events.append(Event("Normal", "CancelledOnDelete", message))
    latest = raw["attempts"][-1]
    marker = _timestamp(latest["submitting"]) if latest.get("submitting") and not latest.get("jobName") else None
    until = release_wait(marker, fresh is not None and fresh.at == marker, runtime.clock(), runtime.settle)
    if until is None:
        return Release(events)
    if out_of_time:
        message = "a create of the Vertex job may still land; releasing the resource anyway, the job may run"
        return Release([*events, Event("Warning", "FinalizerGaveUp", message)])
    if retry == 0:
        message = (
            f"a create of attempt {latest.get('attempt')} may still land until {until.strftime('%H:%M:%SZ')}: "
            "keeping the resource until then, to cancel its job if it does (deletionPolicy Cancel)"
        )
        events.append(Event("Normal", "AwaitingCreate", message))
    remaining = (until - runtime.clock()).total_seconds()
    return Release(events, again_in=max(0.1, min(remaining, runtime.settings.poll_interval)))


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
