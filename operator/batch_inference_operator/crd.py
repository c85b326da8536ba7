"""Generate the `apiextensions.k8s.io/v1` CRD from the pydantic models in `api/`.

Kubernetes accepts only *structural* schemas: no `$ref`, no `anyOf` carrying types, every node
typed, no `additionalProperties` next to `properties`. Pydantic's JSON schema has all of those, so
`structural()` rewrites it. `deploy/crds/` holds this module's output; a test fails when it drifts.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from . import api

CRD_NAME = f"{api.PLURAL}.{api.GROUP}"
CRD_FILE = f"deploy/crds/{api.GROUP}_{api.PLURAL}.yaml"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
    {"name": "Succeeded", "type": "integer", "jsonPath": ".status.completionStats.successful"},
    {"name": "Failed", "type": "integer", "jsonPath": ".status.completionStats.failed"},
    {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempt"},
    {"name": "Shards", "type": "string", "jsonPath": ".status.shardsDone"},
    {
        "name": "Cache",
        "type": "number",
        "format": "float",
        "jsonPath": ".status.usage.cacheHitRatio",
        "description": "Implicit-cache hit ratio: cached / prompt tokens.",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why the resource is where it is: the Ready condition's reason (a failure's cause when Failed).",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Job", "type": "string", "jsonPath": ".status.job.name", "priority": 1},
    {"name": "Output", "type": "string", "jsonPath": ".status.outputLocation", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]

# Fields a field selector may name (`kubectl get bij --field-selector status.phase=Failed`); a real
# apiserver (1.31+) refuses any other. Each must be a string, integer or boolean leaf of the schema.
SELECTABLE_FIELDS: list[dict[str, str]] = [{"jsonPath": ".status.phase"}]

_DROPPED_KEYS = {"title", "$defs"}


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON-schema node (and its children) into Kubernetes' structural form."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        # `X | None`: Kubernetes prunes nulls of non-nullable fields, which is what an omitted optional means.
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {variants} in a structural schema")
        node = {**structural(variants[0], defs), **node}
        if node.get("default", ...) is None:
            del node["default"]
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "properties":
            result[key] = {name: structural(child, defs) for name, child in value.items()}
        elif key == "items":
            result[key] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                result[key] = structural(value, defs)
            # `false` is pydantic's extra="forbid"; the apiserver's strict field validation does that job.
        else:
            result[key] = value
    return result


def _schema_of(model: type[api.ApiModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def openapi_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A Gemini batch inference job on Vertex AI, driven to completion by the operator.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _schema_of(api.BatchInferenceJobSpec),
            "status": _schema_of(api.BatchInferenceJobStatus),
        },
    }


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": list(api.CATEGORIES),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "selectableFields": SELECTABLE_FIELDS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render_crd() -> str:
    header = "# Generated from operator/batch_inference_operator/api/ by `make crds`. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)
