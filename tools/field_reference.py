"""`make docs`: write docs/fields.md, the field reference of BatchInferenceJob, from the pydantic models
(through the CRD the operator generates from them, so it says what the cluster enforces).

`--check` writes nothing and exits 1 when the committed file differs from what the models make; a test
runs it, so the reference cannot drift from the API.
"""

from __future__ import annotations

import sys
from typing import Any

import generated
from batch_inference_operator import api, crd
from generated import REPO

TARGET = REPO / "docs/fields.md"

HEADER = f"""# BatchInferenceJob field reference

Generated from the pydantic models in `operator/batch_inference_operator/api/` by `make docs`
(`tools/field_reference.py`); do not edit. `{api.GROUP}/{api.VERSION}`, kind `{api.KIND}`
(short name `{api.SHORT_NAMES[0]}`). `kubectl explain bij.spec --recursive` shows the same from a cluster.

"""


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "object")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {_type(node['additionalProperties'])}"
    return str(kind)


def _limits(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{value}`" for value in node["enum"]))
    for key, word in (("minimum", "at least"), ("maximum", "at most")):
        if key in node:
            parts.append(f"{word} {node[key]}")
    for key, word in (("minItems", "at least"), ("maxItems", "at most")):
        if key in node:
            parts.append(f"{word} {node[key]} items")
    if "maxLength" in node:
        parts.append(f"at most {node['maxLength']} characters")
    if "maxProperties" in node:
        parts.append(f"at most {node['maxProperties']} entries")
    if "default" in node and not isinstance(node["default"], dict | list):
        parts.append(f"default `{node['default']}`")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _rows(node: dict[str, Any], path: str, required: bool, rows: list[list[str]], rules: list[tuple[str, str]]) -> None:
    described = _cell(node.get("description", "")).removesuffix(".")
    limits = _limits(node)
    limits = limits[:1].upper() + limits[1:]
    rows.append(
        [f"`{path}`", _type(node), "yes" if required else "", ". ".join(part for part in (described, limits) if part)]
    )
    for rule in node.get("x-kubernetes-validations", []):
        if "message" in rule:
            rules.append((path, rule["message"]))
    children = node.get("properties", {})
    needed = set(node.get("required", []))
    for name, child in children.items():
        _rows(child, f"{path}.{name}", name in needed, rows, rules)
    items = node.get("items")
    if isinstance(items, dict):
        for rule in items.get("x-kubernetes-validations", []):
            if "message" in rule:
                rules.append((f"{path}[]", rule["message"]))
        for name, child in items.get("properties", {}).items():
            _rows(child, f"{path}[].{name}", name in set(items.get("required", [])), rows, rules)
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        for rule in values.get("x-kubernetes-validations", []):
            if "message" in rule:
                rules.append((f"{path}{{}}", rule["message"]))


def _section(title: str, intro: str, schema: dict[str, Any], root: str) -> str:
    rows: list[list[str]] = []
    rules: list[tuple[str, str]] = []
    for name, child in schema.get("properties", {}).items():
        _rows(child, f"{root}.{name}", name in set(schema.get("required", [])), rows, rules)
    for rule in schema.get("x-kubernetes-validations", []):
        if "message" in rule:
            rules.insert(0, (root, rule["message"]))
    lines = [f"## {title}", "", intro, "", "| field | type | required | meaning |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if rules:
        lines += ["", f"What the cluster refuses in `{root}`, in the words of its message:", ""]
        lines += [f"- `{path}`: {_cell(message)}" for path, message in rules]
    return "\n".join(lines) + "\n"


def render() -> str:
    schema = crd.openapi_schema()["properties"]
    spec = _section(
        "spec",
        "What you write. `model`, `project`, `location`, `input` and `output` cannot change after creation.",
        schema["spec"],
        "spec",
    )
    status = _section("status", "What the operator reports; never written by you.", schema["status"], "status")
    columns = ["## kubectl get columns", "", "| column | from | shown |", "|---|---|---|"]
    columns += [
        f"| {c['name'].upper()} | `{c['jsonPath']}` | {'-o wide' if c.get('priority') else 'always'} |"
        for c in crd.PRINTER_COLUMNS
    ]
    selectable = ", ".join(f"`{f['jsonPath'].lstrip('.')}`" for f in crd.SELECTABLE_FIELDS)
    columns += ["", f"Field selectors (`kubectl get bij --field-selector ...`): {selectable}, besides"]
    columns += ["`metadata.name` and `metadata.namespace` (Kubernetes 1.31 and later)."]
    return HEADER + spec + "\n" + status + "\n" + "\n".join(columns) + "\n"


if __name__ == "__main__":
    sys.exit(generated.main("tools/field_reference.py", __doc__, TARGET, render))
