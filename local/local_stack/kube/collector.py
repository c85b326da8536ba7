"""The garbage collector's part of a deletion, as kube-controller-manager does it through ownerReferences.

Propagation (DeleteOptions.propagationPolicy, or the query parameter; Background by default):
- Background: the owner goes (once its finalizers are removed), then each dependent whose owners are all
  gone is deleted, its own finalizers honoured; a dependent with an owner left only loses the dangling
  reference.
- Foreground: the owner gets the `foregroundDeletion` finalizer and a deletionTimestamp; its dependents
  are deleted; it goes once no dependent with `blockOwnerDeletion` remains (and its other finalizers are gone).
- Orphan: the owner gets the `orphan` finalizer; the references to it are removed from its dependents,
  then the finalizer.
The real collector does this a moment after the request; here it happens at once, in the same request.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import api_error
from .store import ObjectKey, ObjectStore

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Background", "Foreground", "Orphan")

# Deletes one stored object as the delete verb does (finalizers honoured): (store, key, object).
Delete = Callable[[ObjectStore, ObjectKey, dict[str, Any]], None]


def propagation(body: Any, params: dict[str, str]) -> str:
    options = body if isinstance(body, dict) else {}
    policy = options.get("propagationPolicy") or params.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is True:
        return "Orphan"
    if policy is not None and policy not in POLICIES:
        raise api_error(
            422,
            "Invalid",
            f'propagationPolicy: Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
        )
    return policy or "Background"


def check_preconditions(body: Any, obj: dict[str, Any]) -> None:
    """DeleteOptions.preconditions: the uid and resourceVersion the client expects (409 otherwise)."""
    wanted = (body if isinstance(body, dict) else {}).get("preconditions") or {}
    meta = obj["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        if wanted.get(field) and wanted[field] != meta.get(field):
            raise api_error(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {meta.get('name')}: Precondition failed: {label} in precondition: "
                f"{wanted[field]}, {label} in object meta: {meta.get(field)}",
            )


def _dependents(store: ObjectStore, uid: str, namespace: str | None) -> list[tuple[ObjectKey, dict[str, Any]]]:
    return [
        (key, obj)
        for key, obj in list(store.objects.items())
        if (namespace is None or key[1] == namespace)
        and any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
    ]


def _owner_exists(store: ObjectStore, uid: str, namespace: str | None) -> bool:
    return any(obj["metadata"].get("uid") == uid and key[1] in (namespace, None) for key, obj in store.objects.items())


def _rewrite(store: ObjectStore, key: ObjectKey, obj: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
    new = copy.deepcopy(obj)
    change(new["metadata"])
    store.commit(store.types[key[0]], key[1], key[2], new, "MODIFIED", obj)


def _drop_refs(uids: set[str]) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        meta["ownerReferences"] = [r for r in meta.get("ownerReferences") or [] if r.get("uid") not in uids]
        if not meta["ownerReferences"]:
            del meta["ownerReferences"]

    return change


def _drop_finalizer(name: str) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != name]
        if not meta["finalizers"]:
            del meta["finalizers"]

    return change


def orphan(store: ObjectStore, obj: dict[str, Any], namespace: str | None) -> None:
    """The `orphan` finalizer's work: the dependents keep running, without the reference."""
    uid = obj["metadata"]["uid"]
    for key, dependent in _dependents(store, uid, namespace):
        _rewrite(store, key, dependent, _drop_refs({uid}))


def removed(store: ObjectStore, obj: dict[str, Any], namespace: str | None, delete: Delete) -> None:
    """`obj` is gone for good: collect its dependents, and let an owner waiting in the foreground go."""
    uid = obj["metadata"]["uid"]
    for key, _ in _dependents(store, uid, namespace):
        current = store.objects.get(key)
        if current is None:
            continue
        refs = current["metadata"].get("ownerReferences") or []
        dangling = {r["uid"] for r in refs if not _owner_exists(store, r.get("uid", ""), key[1])}
        if len(dangling) < len({r.get("uid") for r in refs}):
            _rewrite(store, key, current, _drop_refs(dangling))
        elif not current["metadata"].get("deletionTimestamp"):
            delete(store, key, current)
    for ref in obj["metadata"].get("ownerReferences") or []:
        for key, owner in list(store.objects.items()):
            if owner["metadata"].get("uid") == ref.get("uid") and FOREGROUND in (
                owner["metadata"].get("finalizers") or []
            ):
                release_foreground(store, key, owner, delete)


def release_foreground(store: ObjectStore, key: ObjectKey, owner: dict[str, Any], delete: Delete) -> None:
    """An owner deleted in the foreground goes once no blocking dependent is left."""
    blocking = [
        dependent
        for _, dependent in _dependents(store, owner["metadata"]["uid"], key[1])
        if any(
            r.get("uid") == owner["metadata"]["uid"] and r.get("blockOwnerDeletion")
            for r in dependent["metadata"]["ownerReferences"]
        )
    ]
    if blocking:
        return
    _rewrite(store, key, owner, _drop_finalizer(FOREGROUND))
    current = store.objects.get(key)
    if current is not None and not current["metadata"].get("finalizers"):
        delete(store, key, current)


def foreground(store: ObjectStore, key: ObjectKey, owner: dict[str, Any], delete: Delete) -> None:
    """Foreground deletion: every dependent is deleted first; the owner waits for the blocking ones."""
    for dep_key, dependent in _dependents(store, owner["metadata"]["uid"], key[1]):
        if not dependent["metadata"].get("deletionTimestamp"):
            delete(store, dep_key, dependent)
    current = store.objects.get(key)
    if current is not None:
        release_foreground(store, key, current, delete)
