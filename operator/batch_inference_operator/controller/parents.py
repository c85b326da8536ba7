"""A sharded resource's children as the controller handles them: seen through one index of the watch it
already has (no extra API calls), created and patched as core/shards.py decides, and deleted with
their parent.

Deleting the parent deletes its children twice over: the garbage collector does it through their
ownerReferences on a real cluster, and the parent's release does it too, so no child (and no paid
Vertex job) outlives its parent where no garbage collector runs; `kubectl delete --cascade=orphan`
(the `orphan` finalizer) keeps them, as it asks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .. import api
from ..api import BatchInferenceJobStatus
from ..api.meta import SHARD_INDEX_LABEL
from ..core.actions import Event
from ..core.shards import Child, ParentDecision
from .kube import Kube, StatusConflict, WriteFailed

log = logging.getLogger("batch_inference_operator")
ORPHAN_FINALIZER = "orphan"  # set by the API server for a deletion with propagationPolicy Orphan


@dataclass(frozen=True)
class Family:
    """A parent's children (from the index), and the names of the namespace's other resources."""

    children: tuple[Child, ...] = ()
    taken: frozenset[str] = field(default_factory=frozenset)


def owner_uid(meta: Mapping[str, Any]) -> str | None:
    """The uid of the BatchInferenceJob that controls this object, if one does."""
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == api.KIND
            and str(ref.get("apiVersion", "")).startswith(f"{api.GROUP}/")
        ):
            return str(ref.get("uid") or "") or None
    return None


def as_child(
    name: str, uid: str, meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any]
) -> Child | None:
    """A child as its parent's index keeps it; None for a resource that is no shard."""
    try:
        index = int((meta.get("labels") or {}).get(SHARD_INDEX_LABEL, ""))
    except ValueError:
        return None
    try:
        seen = BatchInferenceJobStatus.model_validate({k: v for k, v in status.items() if k != "kopf"})
    except ValidationError:  # a status this version cannot read: the child shows as not started
        seen = BatchInferenceJobStatus()
    suspend = spec.get("suspend") is True
    return Child(name, uid, index, suspend, str(spec.get("deletionPolicy") or "Cancel"), seen)


def family_of(children: Iterable[Child], names: Iterable[str]) -> Family:
    """`names`: every resource's name in the parent's namespace."""
    mine = tuple(children)
    return Family(mine, frozenset(names) - {child.name for child in mine})


async def act(kube: Kube, namespace: str, decision: ParentDecision) -> tuple[list[Event], bool]:
    """Create and update children as decided; returns Events of what failed, and whether anything did."""
    events: list[Event] = []
    for body in decision.create:
        name = body["metadata"]["name"]
        try:
            await kube.create_job(namespace, body)
        except StatusConflict:  # made by an earlier turn: the watch brings it (or names the conflict)
            log.debug("shard %s/%s exists already", namespace, name)
        except WriteFailed as error:
            events.append(Event("Warning", "ShardCreateFailed", f"could not create shard {name}: {error}"))
    for name, patch in decision.update:
        try:
            await kube.patch_job(namespace, name, patch)
        except (StatusConflict, WriteFailed) as error:
            events.append(Event("Warning", "ShardUpdateFailed", f"could not update shard {name}: {error}"))
    return events, bool(events)


async def delete_children(kube: Kube, body: Mapping[str, Any], children: Iterable[Child]) -> list[Event]:
    """The parent is being deleted: delete its children (each only if it is still the same object)."""
    meta = body.get("metadata") or {}
    if ORPHAN_FINALIZER in (meta.get("finalizers") or []):
        return []
    namespace = meta.get("namespace") or ""
    deleted = [child.name for child in children if await kube.delete_job(namespace, child.name, child.uid)]
    if not deleted:
        return []
    return [Event("Normal", "DeletingShards", f"deleting shard resources {', '.join(sorted(deleted))}")]
