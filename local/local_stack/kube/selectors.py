"""Label and field selectors, as the apiserver parses and applies them to lists and watches.
A selector it cannot parse is a 400, as on a real cluster."""

from __future__ import annotations

import re
from typing import Any

from .errors import api_error

_REQUIREMENT = re.compile(
    r"^\s*(?P<key>[A-Za-z0-9_./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def label_selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for requirement in _split_selector(selector):
        requirement = requirement.strip()
        if requirement.startswith("!"):
            if requirement[1:].strip() in labels:
                return False
            continue
        match = _REQUIREMENT.match(requirement)
        if not match:
            raise api_error(400, "BadRequest", f"unable to parse requirement: {requirement!r}")
        key = match["key"]
        if match["op"]:
            equal = labels.get(key) == match["value"]
            if (match["op"] == "!=") == equal:
                return False
        elif match["setop"]:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            inside = key in labels and labels[key] in values
            if (match["setop"] == "in") != inside:
                return False
        elif key not in labels:
            return False
    return True


def _field_value(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _field_requirements(selector: str) -> list[tuple[str, str, str]]:
    parsed = []
    for requirement in selector.split(","):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", requirement)
        if not match:
            raise api_error(400, "BadRequest", f"invalid field selector: {requirement!r}")
        parsed.append((match[1], match[2], match[3]))
    return parsed


def check_field_labels(selector: str | None, allowed: frozenset[str]) -> None:
    """A real apiserver answers only the field labels a type supports (for a CRD: metadata.name,
    metadata.namespace and its `selectableFields`); any other is a 400, never silently ignored."""
    if not selector:
        return
    for path, _, _ in _field_requirements(selector):
        if path not in allowed:
            raise api_error(400, "BadRequest", f"field label not supported: {path}")


def field_selector_matches(selector: str | None, obj: dict[str, Any]) -> bool:
    if not selector:
        return True
    requirements = _field_requirements(selector)
    return all((_field_value(obj, path) == value) == (op != "!=") for path, op, value in requirements)


def selected(params: dict[str, str], obj: dict[str, Any]) -> bool:
    """Whether the object passes the request's `labelSelector` and `fieldSelector`."""
    return label_selector_matches(
        params.get("labelSelector"), obj["metadata"].get("labels") or {}
    ) and field_selector_matches(params.get("fieldSelector"), obj)
