"""kopf registration: each handler a few lines, handing over to lifecycle, executor and poller.

`register(settings)` is called once by `python -m batch_inference_operator run`, before kopf starts:
the settings are read once, fix the timer's interval, and reach the handlers through kopf's memo.
Handler ids are the function names, as kopf stores them in annotations: keep them stable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import kopf

from .. import api, metrics
from ..core.admission import Peer, Queue
from ..core.identity import MANAGED_BY, Resource
from ..core.policy import NamespaceAnnotations, Tenancy
from ..core.watchdog import StallLimits
from ..settings import Settings
from .expiry import expire
from .lifecycle import post, reconcile_resource, release_resource
from .poller import poll_forever
from .runtime import Runtime

GVR = (api.GROUP, api.VERSION, api.PLURAL)


class _QuietTimers(logging.Filter):
    """kopf logs every successful timer run at INFO; that is noise for a timer that usually does nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO
            and str(record.msg).startswith("Timer ")
            and str(record.msg).endswith(" succeeded.")
        )


def tenancy_of(
    namespace: str, index: kopf.Index[str, NamespaceAnnotations] | None, settings: Settings
) -> Tenancy | None:
    """Defaults and data policy for a namespace; None while the namespace is not indexed yet (a resource
    created right after its Namespace), so nothing is decided from a partial view."""
    if index is not None and namespace not in index and len(index) > 0:
        return None
    entries = list(index[namespace]) if index is not None and namespace in index else []
    annotations = entries[-1] if entries else NamespaceAnnotations()
    limits = StallLimits(settings.stall_queued_after, settings.stall_running_after)
    return annotations.tenancy(settings.default_project, settings.default_location, settings.locations, limits)


def queue_of(index: kopf.Index[str, Peer] | None, settings: Settings) -> Queue:
    if settings.max_concurrent_jobs <= 0 or index is None or "all" not in index:
        return Queue(settings.max_concurrent_jobs)
    return Queue(settings.max_concurrent_jobs, tuple(index["all"]))


async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = api.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=api.GROUP)
    settings.posting.level = logging.WARNING  # our Events are posted explicitly, one per transition
    # Events say who posted them (`From:` in kubectl describe): this operator and its pod, not "kopf".
    settings.posting.reporting_component = MANAGED_BY
    settings.posting.reporting_instance = socket.gethostname()
    settings.posting.event_name_prefix = "bij-event-"
    settings.watching.server_timeout = 300  # re-establish watches regularly (stale streams, kopf #1276)
    settings.watching.client_timeout = 330
    logging.getLogger("kopf.objects").addFilter(_QuietTimers())
    runtime = Runtime.from_settings(memo.settings)
    runtime.poller = asyncio.create_task(poll_forever(runtime), name="vertex-poller")
    metrics.serve(runtime.settings.metrics_port)
    memo.runtime = runtime


async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime and runtime.poller:
        runtime.poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.poller


def namespace_annotations(name: str, annotations: kopf.Annotations, **_: Any) -> dict[str, NamespaceAnnotations]:
    return {name: NamespaceAnnotations.read(annotations)}


def peers(
    uid: str, namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, Peer]:
    """Every BatchInferenceJob, for the concurrency queue (one watch, no extra API calls)."""
    project = status.get("project") or spec.get("project")
    location = status.get("location") or spec.get("location")
    created = meta.get("creationTimestamp") or ""
    attempted = bool(status.get("attempts"))
    return {"all": Peer(uid, created, f"{namespace}/{name}", project, location, status.get("phase"), attempted)}


async def reconcile(
    body: kopf.Body,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    uid: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace_annotations: kopf.Index[str, NamespaceAnnotations],
    peers: kopf.Index[str, Peer],
    **_: Any,
) -> None:
    runtime: Runtime = memo.runtime
    if meta.get("deletionTimestamp"):  # being deleted: the delete handler owns the jobs now, nothing new starts
        return
    if runtime.held(uid) or runtime.stale(uid, body.get("status") or {}):
        return
    rerun = (meta.get("annotations") or {}).get(api.RERUN_ANNOTATION) or ""
    resource = Resource(namespace, name, uid, meta.get("generation") or 1, rerun)
    if await expire(runtime, body, resource):  # finished, and spec.ttlSecondsAfterFinished has passed
        return
    tenancy = tenancy_of(namespace, namespace_annotations, runtime.settings)
    if tenancy is None:
        return
    created = meta.get("creationTimestamp") or ""
    queue = queue_of(peers, runtime.settings)
    post(body, await reconcile_resource(runtime, body, patch, resource, created, tenancy, queue))


async def release(body: kopf.Body, uid: str, memo: kopf.Memo, retry: int, **_: Any) -> None:
    done = await release_resource(memo.runtime, body, uid, retry)
    post(body, done.events)
    if done.again_in is not None:  # a create may still land: keep the finalizer, look (and cancel) again
        raise kopf.TemporaryError("a create of the Vertex job may still land", delay=done.again_in)


def register(settings: Settings) -> kopf.Memo:
    """Register every handler with kopf's default registry; returns the memo to start kopf with."""
    kopf.on.startup()(configure)
    kopf.on.cleanup()(shutdown)
    kopf.index("namespaces")(namespace_annotations)
    kopf.index(*GVR)(peers)
    kopf.timer(*GVR, interval=settings.reconcile_interval, initial_delay=0)(reconcile)
    kopf.on.delete(*GVR)(release)
    return kopf.Memo(settings=settings)
