"""The write verbs as the apiserver performs them: create, merge and JSON patch, replace (PUT),
delete; finalizers and deletionTimestamp; namespaces that cascade their deletion; and admission
(names, the CRD's schema, defaults, pruning and CEL rules) with refusals naming the fields.

Each verb reads the current object from the store, decides, and commits through
`ObjectStore.commit`, which gives the write its resourceVersion and tells the watchers.
"""

from __future__ import annotations

import copy
import datetime
import re
import uuid
from typing import Any

import jsonpatch

from . import collector
from .errors import api_error
from .resources import NAMESPACES, ResourceType, Route
from .schema import Cause
from .store import ObjectKey, ObjectStore

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# What the client may not change, whatever it sent.
_FIXED_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "resourceVersion",
)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- admission


def _stamp_new(rtype: ResourceType, obj: dict[str, Any]) -> None:
    metadata = obj.setdefault("metadata", {})
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = now_rfc3339()
    if rtype.has_generation:
        metadata["generation"] = 1
    for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        metadata.pop(transient, None)
    if rtype.plural == "namespaces":
        obj["status"] = {"phase": "Active"}


def _admit(route: Route, obj: dict[str, Any], old: dict[str, Any] | None, params: dict[str, str]) -> dict[str, Any]:
    """Schema, defaults, pruning and CEL: refuse as the apiserver would, naming the fields."""
    schema = route.rtype.schema
    if schema is None:
        return obj
    mode = params.get("fieldValidation", "Warn")
    stored, unknown, causes = schema.admit(obj, old, strict=(mode == "Strict"))
    name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName", "")
    if unknown and mode == "Strict":
        listed = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise api_error(
            400,
            "BadRequest",
            f'{route.rtype.kind} in version "{route.rtype.version}" cannot be '
            f"handled as a {route.rtype.kind}: strict decoding error: {listed}",
        )
    if causes:
        _refuse(route, name, causes)
    return stored


def _refuse(route: Route, name: str, causes: list[Cause]) -> None:
    rendered = ", ".join(cause.render() for cause in causes)
    kind = f"{route.rtype.kind}.{route.rtype.group}" if route.rtype.group else route.rtype.kind
    raise api_error(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {"[" + rendered + "]" if len(causes) > 1 else rendered}',
        {
            "name": name,
            "group": route.rtype.group,
            "kind": route.rtype.kind,
            "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
        },
    )


def _check_name(route: Route, name: str) -> None:
    pattern = _DNS_LABEL if route.rtype.plural == "namespaces" else _DNS_SUBDOMAIN
    limit = 63 if route.rtype.plural == "namespaces" else 253
    if not pattern.match(name) or len(name) > limit:
        _refuse(
            route,
            name,
            [
                Cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of '
                    "lower case alphanumeric characters, '-' or '.'",
                )
            ],
        )


# ---------------------------------------------------------------- the verbs


def seed(store: ObjectStore, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """Store an object directly (tests, bootstrap), with the metadata a create would give it."""
    obj = copy.deepcopy(obj)
    obj.setdefault("apiVersion", rtype.api_version)
    obj.setdefault("kind", rtype.kind)
    namespace = obj["metadata"].get("namespace") if rtype.namespaced else None
    _stamp_new(rtype, obj)
    store.commit(rtype, namespace, obj["metadata"]["name"], obj, "ADDED", None)
    return obj


def create(store: ObjectStore, route: Route, body: Any, params: dict[str, str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise api_error(400, "BadRequest", "the body of the request was not a JSON object")
    rtype = route.rtype
    obj = copy.deepcopy(body)
    metadata = obj.setdefault("metadata", {})
    obj.setdefault("apiVersion", rtype.api_version)
    obj.setdefault("kind", rtype.kind)
    if obj["kind"] != rtype.kind:
        raise api_error(400, "BadRequest", f"the kind {obj['kind']!r} does not match the resource {rtype.plural!r}")
    if rtype.namespaced:
        if metadata.get("namespace") not in (None, route.namespace):
            raise api_error(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        metadata["namespace"] = route.namespace
        namespace = store.objects.get((NAMESPACES, None, route.namespace or ""))
        if namespace is None:
            raise api_error(
                404,
                "NotFound",
                f'namespaces "{route.namespace}" not found',
                {"name": route.namespace, "kind": "namespaces"},
            )
        if namespace["status"].get("phase") == "Terminating":
            raise api_error(
                403,
                "Forbidden",
                f"unable to create new content in namespace {route.namespace} because it is being terminated",
            )
    else:
        metadata.pop("namespace", None)
    if not metadata.get("name"):
        if not metadata.get("generateName"):
            _refuse(
                route,
                "",
                [Cause("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")],
            )
        metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
    name = metadata["name"]
    _check_name(route, name)
    if rtype.status_subresource and rtype.schema is not None:
        obj.pop("status", None)
    _stamp_new(rtype, obj)
    obj = _admit(route, obj, None, params)
    key = store.key(route, name)
    if key in store.objects:
        raise api_error(
            409,
            "AlreadyExists",
            f'{rtype.qualified} "{name}" already exists',
            {"name": name, "group": rtype.group, "kind": rtype.plural},
        )
    return store.commit(rtype, key[1], name, obj, "ADDED", None)


def patch(store: ObjectStore, route: Route, content_type: str, body: Any, params: dict[str, str]) -> dict[str, Any]:
    old = store.existing(route)
    if content_type == "application/json-patch+json":
        if not isinstance(body, list):
            raise api_error(400, "BadRequest", "a JSON patch must be a list of operations")
        try:
            patched = jsonpatch.apply_patch(copy.deepcopy(old), body)
        except jsonpatch.JsonPatchTestFailed as error:
            raise api_error(
                422, "Invalid", f"the server rejected our request due to an error in our request: {error}"
            ) from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise api_error(422, "Invalid", f"the server rejected our request: {error}") from None
    elif content_type == "application/merge-patch+json" or (
        content_type == "application/strategic-merge-patch+json" and route.rtype.schema is None
    ):
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "a merge patch must be a JSON object")
        patched = _merge_patch(copy.deepcopy(old), body)
    else:
        raise api_error(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - "
            "accepted media types include: application/json-patch+json, "
            "application/merge-patch+json",
        )
    return _update(store, route, old, patched, params)


def replace(store: ObjectStore, route: Route, body: Any, params: dict[str, str]) -> dict[str, Any]:
    old = store.existing(route)
    if not isinstance(body, dict):
        raise api_error(400, "BadRequest", "the body of the request was not a JSON object")
    if not body.get("metadata", {}).get("resourceVersion") and route.rtype.schema is not None:
        _refuse(
            route,
            route.name or "",
            [
                Cause(
                    "metadata.resourceVersion",
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update",
                )
            ],
        )
    return _update(store, route, old, copy.deepcopy(body), params)


def _update(
    store: ObjectStore, route: Route, old: dict[str, Any], new: dict[str, Any], params: dict[str, str]
) -> dict[str, Any]:
    rtype = route.rtype
    old_meta, new_meta = old["metadata"], new.setdefault("metadata", {})
    requested_rv = new_meta.get("resourceVersion")
    if requested_rv and requested_rv != old_meta["resourceVersion"]:
        raise api_error(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rtype.qualified} "{route.name}": '
            "the object has been modified; please apply your changes to the latest version and try again",
            {"name": route.name, "group": rtype.group, "kind": rtype.plural},
        )
    for fixed in _FIXED_METADATA:
        if fixed in old_meta:
            new_meta[fixed] = old_meta[fixed]
        else:
            new_meta.pop(fixed, None)
    new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
    if rtype.status_subresource:
        if route.subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        elif "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if old_meta.get("deletionTimestamp"):
        added = set(new["metadata"].get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            _refuse(
                route,
                route.name or "",
                [
                    Cause(
                        "metadata.finalizers",
                        "FieldValueForbidden",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    )
                ],
            )
    new = _admit(route, new, old, params)
    if rtype.has_generation and _without(new, "metadata", "status") != _without(old, "metadata", "status"):
        new["metadata"]["generation"] = old_meta.get("generation", 1) + 1
    if new == old:
        return old  # a no-op write is not a write: no new resourceVersion, no watch event
    namespace = route.namespace if rtype.namespaced else None
    if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
        store.objects[(rtype.key, namespace, route.name or "")] = new
        return _gone(store, rtype, namespace, new)
    return store.commit(rtype, namespace, route.name or "", new, "MODIFIED", old)


def delete(store: ObjectStore, route: Route, body: Any = None, params: dict[str, str] | None = None) -> dict[str, Any]:
    """DeleteOptions: preconditions (uid, resourceVersion) and propagationPolicy (collector.py)."""
    obj = store.existing(route)
    collector.check_preconditions(body, obj)
    policy = collector.propagation(body, params or {})
    namespace = route.namespace if route.rtype.namespaced else None
    if route.rtype.plural == "namespaces":
        return _delete_namespace(store, obj)
    if policy == "Background" or obj["metadata"].get("deletionTimestamp"):
        return _delete_object(store, route.rtype, namespace, obj)
    key = store.key(route)
    finalizer = collector.ORPHAN if policy == "Orphan" else collector.FOREGROUND
    marked = copy.deepcopy(obj)
    marked["metadata"]["finalizers"] = [*(obj["metadata"].get("finalizers") or []), finalizer]
    marked["metadata"]["deletionTimestamp"] = now_rfc3339()
    marked["metadata"]["deletionGracePeriodSeconds"] = 0
    shown = store.commit(route.rtype, namespace, key[2], marked, "MODIFIED", obj)
    if policy == "Foreground":
        collector.foreground(store, key, marked, _delete_stored)
        return store.objects.get(key, shown)
    collector.orphan(store, marked, namespace)
    current = store.objects[key]
    kept = copy.deepcopy(current)
    kept["metadata"]["finalizers"] = [f for f in current["metadata"]["finalizers"] if f != collector.ORPHAN]
    if kept["metadata"]["finalizers"]:
        return store.commit(route.rtype, namespace, key[2], kept, "MODIFIED", current)
    del kept["metadata"]["finalizers"]
    store.objects[key] = kept
    return _gone(store, route.rtype, namespace, kept)


def _gone(store: ObjectStore, rtype: ResourceType, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
    """Removed for good: the watchers are told, then its dependents are collected (collector.py)."""
    result = store.commit(rtype, namespace, obj["metadata"]["name"], None, "DELETED", obj)
    collector.removed(store, obj, namespace, _delete_stored)
    _finish_namespace_if_empty(store, namespace)
    return result


def _delete_stored(store: ObjectStore, key: ObjectKey, obj: dict[str, Any]) -> None:
    _delete_object(store, store.types[key[0]], key[1], obj)


def _delete_object(
    store: ObjectStore, rtype: ResourceType, namespace: str | None, obj: dict[str, Any]
) -> dict[str, Any]:
    """Gone at once without finalizers; with them, marked with a deletionTimestamp until they are removed."""
    name = obj["metadata"]["name"]
    if obj["metadata"].get("finalizers"):
        if obj["metadata"].get("deletionTimestamp"):
            return obj
        marked = copy.deepcopy(obj)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        return store.commit(rtype, namespace, name, marked, "MODIFIED", obj)
    return _gone(store, rtype, namespace, obj)


def _delete_namespace(store: ObjectStore, namespace: dict[str, Any]) -> dict[str, Any]:
    """Mark it Terminating and delete its content (finalizers honoured); it goes once empty."""
    name = namespace["metadata"]["name"]
    rtype = store.types[NAMESPACES]
    if namespace["status"].get("phase") != "Terminating":
        terminating = copy.deepcopy(namespace)
        terminating["status"]["phase"] = "Terminating"
        terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
        namespace = store.commit(rtype, None, name, terminating, "MODIFIED", namespace)
    for (key, ns, _), obj in list(store.objects.items()):
        if ns == name:
            _delete_object(store, store.types[key], ns, obj)
    _finish_namespace_if_empty(store, name)
    return namespace


def _finish_namespace_if_empty(store: ObjectStore, namespace: str | None) -> None:
    if namespace is None:
        return
    rtype = store.types[NAMESPACES]
    ns_obj = store.objects.get((rtype.key, None, namespace))
    if ns_obj is None or ns_obj["status"].get("phase") != "Terminating":
        return
    if not any(ns == namespace for (_, ns, _) in store.objects):
        store.commit(rtype, None, namespace, None, "DELETED", ns_obj)


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _merge_patch(target: Any, changes: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(changes, dict):
        return copy.deepcopy(changes)
    result = target if isinstance(target, dict) else {}
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result
