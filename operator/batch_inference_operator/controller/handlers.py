"""kopf registration: each handler a few lines, handing over to lifecycle, executor and poller.

`register(settings)` is called once by `python -m batch_inference_operator run`, before kopf starts:
the settings are read once and reach the handlers through kopf's memo.
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
from ..api.meta import SHARD_INDEX_LABEL
from ..core.actions import Event
from ..core.admission import Peer, Queue
from ..core.identity import MANAGED_BY, Resource
from ..core.policy import NamespaceAnnotations, Tenancy
from ..core.shards import Child
from ..core.watchdog import StallLimits
from ..settings import Settings
from .expiry import expire
from .kube import StatusConflict, WriteFailed, involved_object
from .lifecycle import reconcile_resource, release_resource
from .parents import as_child, delete_children, family_of, owner_uid
from .poller import poll_forever
from .runtime import Runtime

GVR = (api.GROUP, api.VERSION, api.PLURAL)


class _QuietTimers(logging.Filter):
    """kopf logs every successful handler run at INFO: one line per watch event of every resource for
    `wake`, which only wakes its loop. Noise, and at thousands of resources a cost."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (
            record.levelno == logging.INFO
            and text.startswith(("Timer ", "Handler 'wake'"))
            and text.endswith(" succeeded.")
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
    settings.batching.batch_window = 0.01  # a watch event is acted on at once, not after 0.1 s of quiet
    runtime = Runtime.from_settings(memo.settings)
    runtime.kube.info = getattr(memo, "connection", None)
    runtime.poller = asyncio.create_task(poll_forever(runtime), name="vertex-poller")
    metrics.serve(runtime.settings.metrics_port)
    memo.runtime = runtime


async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime and runtime.poller:
        runtime.poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.poller
    if runtime:
        await runtime.kube.close()


async def post(runtime: Runtime, body: kopf.Body, events: list[Event]) -> None:
    """Post a turn's Events, aggregated (controller/kube.py); a failure to post is logged, never fatal."""
    if not events:
        return
    try:
        await runtime.kube.post_events(involved_object(body), events, asyncio.get_running_loop().time())
    except (StatusConflict, WriteFailed) as error:
        logging.getLogger("batch_inference_operator").warning("posting Events failed: %s", error)


def children(uid: str, name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any) -> dict[str, Child]:
    """Shard resources by their parent's uid, from the same watch (core/shards.py)."""
    owner = owner_uid(meta)
    child = as_child(name, uid, meta, spec, status) if owner else None
    return {owner: child} if owner and child else {}


def resource_names(namespace: str, name: str, **_: Any) -> dict[str, str]:
    """Every BatchInferenceJob's name, by namespace: a shard's name held by another resource is a conflict."""
    return {namespace: name}


def namespace_annotations(name: str, annotations: kopf.Annotations, **_: Any) -> dict[str, NamespaceAnnotations]:
    return {name: NamespaceAnnotations.read(annotations)}


def peers(
    uid: str, namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, Peer]:
    """Every BatchInferenceJob, for the concurrency queue (one watch, no extra API calls); a sharded parent
    holds no Vertex job (its children do), so it neither runs nor waits in the queue."""
    if status.get("shards"):
        return {}
    project = status.get("project") or spec.get("project")
    location = status.get("location") or spec.get("location")
    created = meta.get("creationTimestamp") or ""
    attempted = bool(status.get("attempts"))
    return {"all": Peer(uid, created, f"{namespace}/{name}", project, location, status.get("phase"), attempted)}


async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own minimal logins (a service account, else a kubeconfig), kept for the operator's writes
    too (controller/kube.py); no Kubernetes client library is imported."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None and info is not None:
        runtime.kube.info = info
    memo.connection = info
    return info


def wake(uid: str, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Every watch event of a resource (its creation, a spec edit, a status write echoed) wakes its loop,
    and its parent's, when it is a shard: the parent rolls it up."""
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        runtime.wake(uid)
        owner = owner_uid(meta)
        if owner:
            runtime.wake(owner)


async def reconcile(
    body: kopf.Body,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    uid: str,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    namespace_annotations: kopf.Index[str, NamespaceAnnotations],
    peers: kopf.Index[str, Peer],
    children: kopf.Index[str, Child],
    resource_names: kopf.Index[str, str],
    **_: Any,
) -> None:
    """One loop per resource: a turn, then sleep until a watch event, a poll that moved its job, or the
    delay the decision asked for (a backoff, a settle window, a resume delay); `resync` at the latest."""
    runtime: Runtime = memo.runtime
    waker = runtime.wakers.setdefault(uid, asyncio.Event())
    resync = runtime.settings.reconcile_interval
    while not stopped and not meta.get("deletionTimestamp"):
        waker.clear()
        delay = await turn(
            runtime, body, meta, namespace, name, uid, namespace_annotations, peers, children, resource_names
        )
        if stopped or meta.get("deletionTimestamp"):
            break
        await sleep_until_woken(waker, stopped, resync if delay is None else min(delay, resync))


async def sleep_until_woken(waker: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    if waker.is_set():
        return
    woken = asyncio.ensure_future(waker.wait())
    ended = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({woken, ended}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        ended.cancel()


async def turn(
    runtime: Runtime,
    body: kopf.Body,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    uid: str,
    namespace_annotations: kopf.Index[str, NamespaceAnnotations],
    peers: kopf.Index[str, Peer],
    children: kopf.Index[str, Child] | None = None,
    resource_names: kopf.Index[str, str] | None = None,
) -> float | None:
    """One resource's turn; returns the delay its decision asked for (None: until woken)."""
    if runtime.held(uid):
        return runtime.until_retry(uid)
    if runtime.stale(uid, body.get("status") or {}):  # this process's last write is not in the body yet
        return runtime.write_grace
    rerun = (meta.get("annotations") or {}).get(api.RERUN_ANNOTATION) or ""
    shard = (meta.get("labels") or {}).get(SHARD_INDEX_LABEL, "") if owner_uid(meta) else ""
    resource = Resource(namespace, name, uid, meta.get("generation") or 1, rerun, shard)
    ttl = await expire(runtime, body, resource)  # spec.ttlSecondsAfterFinished
    if ttl.done:
        return ttl.again_in
    tenancy = tenancy_of(namespace, namespace_annotations, runtime.settings)
    if tenancy is None:
        return runtime.settings.retry_base
    created = meta.get("creationTimestamp") or ""
    family = None
    if (body.get("status") or {}).get("shards"):
        mine = list(children[uid]) if children is not None and uid in children else []
        names = list(resource_names[namespace]) if resource_names is not None and namespace in resource_names else []
        family = family_of(mine, names)
    done = await reconcile_resource(
        runtime, body, runtime.kube, resource, created, tenancy, queue_of(peers, runtime.settings), family
    )
    await post(runtime, body, done.events)
    return soonest(done.requeue_after, ttl.again_in)


def soonest(*delays: float | None) -> float | None:
    """The shortest of the delays given; None when none is."""
    given = [delay for delay in delays if delay is not None]
    return min(given) if given else None


async def release(
    body: kopf.Body, uid: str, memo: kopf.Memo, retry: int, children: kopf.Index[str, Child], **_: Any
) -> None:
    try:
        await post(memo.runtime, body, await delete_children(memo.runtime.kube, body, children.get(uid, [])))
    except (StatusConflict, WriteFailed) as error:
        raise kopf.TemporaryError(f"deleting the shard resources failed: {error}", delay=2) from error
    done = await release_resource(memo.runtime, body, uid, retry)
    await post(memo.runtime, body, done.events)
    if done.again_in is not None:  # a create may still land: keep the finalizer, look (and cancel) again
        raise kopf.TemporaryError("a create of the Vertex job may still land", delay=done.again_in)


def register(settings: Settings) -> kopf.Memo:
    """Register every handler with kopf's default registry; returns the memo to start kopf with."""
    kopf.on.startup()(configure)
    kopf.on.cleanup()(shutdown)
    kopf.index("namespaces")(namespace_annotations)
    kopf.index(*GVR)(peers)
    kopf.index(*GVR)(children)
    kopf.index(*GVR)(resource_names)
    kopf.on.login()(login)
    kopf.on.event(*GVR)(wake)
    kopf.daemon(*GVR, cancellation_timeout=settings.vertex_timeout + 30)(reconcile)
    kopf.on.delete(*GVR)(release)
    return kopf.Memo(settings=settings)
