"""The OpenAPI v3 documents kubectl reads (`/openapi/v3` and one document per group version),
generated from the served types. kubectl validates a manifest against them before sending it; the
write operations declare `fieldValidation`, which tells kubectl to leave validation to the server,
so a bad manifest is refused by the server naming the field, as on a real cluster."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from .discovery import SERVER_VERSION
from .resources import ResourceType


def _by_group_version(types: Iterable[ResourceType]) -> dict[str, list[ResourceType]]:
    groups: dict[str, list[ResourceType]] = {}
    for rtype in types:
        prefix = f"apis/{rtype.group}/{rtype.version}" if rtype.group else f"api/{rtype.version}"
        groups.setdefault(prefix, []).append(rtype)
    return groups


def openapi_root(types: Iterable[ResourceType]) -> dict[str, Any]:
    """`/openapi/v3`: where each group version's document is, with a hash of its content."""
    paths = {}
    for prefix, grouped in _by_group_version(types).items():
        digest = hashlib.sha256(json.dumps(openapi_document(grouped), sort_keys=True).encode()).hexdigest()
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def openapi_document_at(types: Iterable[ResourceType], prefix: str) -> dict[str, Any] | None:
    """The document for `api/V` or `apis/G/V`; None when no served type is in that group version."""
    grouped = _by_group_version(types).get(prefix)
    return None if grouped is None else openapi_document(grouped)


def openapi_document(types: list[ResourceType]) -> dict[str, Any]:
    """Enough of the apiserver's OpenAPI v3 for kubectl: schemas with their GVK, and paths whose write
    operations declare `fieldValidation`, which tells kubectl to leave validation to the server."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for rtype in types:
        reverse = ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
        schema_name = f"{reverse}.{rtype.version}.{rtype.kind}"
        schema = (
            copy.deepcopy(rtype.schema.schema)
            if rtype.schema
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schema["x-kubernetes-group-version-kind"] = [
            {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        ]
        schemas[schema_name] = schema
        base = f"/apis/{rtype.group}/{rtype.version}" if rtype.group else f"/api/{rtype.version}"
        scope = f"{base}/namespaces/{{namespace}}/{rtype.plural}" if rtype.namespaced else f"{base}/{rtype.plural}"
        ref = {"$ref": f"#/components/schemas/{schema_name}"}
        gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        body = {"content": {"application/json": {"schema": ref}}}
        reply = {"200": {"content": {"application/json": {"schema": ref}}}}
        paths[scope] = {
            "get": {"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk, "responses": reply},
            "post": {
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "requestBody": body,
                "responses": reply,
            },
        }
        item = {
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": reply},
            "put": {
                "x-kubernetes-action": "put",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "requestBody": body,
                "responses": reply,
            },
            "patch": {
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "requestBody": body,
                "responses": reply,
            },
            "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": reply},
        }
        paths[f"{scope}/{{name}}"] = item
        if rtype.status_subresource:
            paths[f"{scope}/{{name}}/status"] = {k: v for k, v in item.items() if k in ("get", "put", "patch")}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }
