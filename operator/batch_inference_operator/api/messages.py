"""pydantic's validation errors in the apiserver's words, one line per field.

A manifest the operator refuses (`parse_spec`) should read as `kubectl apply` would have said it, so a
user who meets both sees one vocabulary: `Required value`, `unknown field`, `must be of type boolean`,
`Unsupported value: ...: supported values: ...`. Messages of our own checks pass through unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_TYPES = {
    "bool_type": "boolean",
    "int_type": "integer",
    "string_type": "string",
    "float_type": "number",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
}


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | int | float | bool) else '"object"'


def _message(item: ErrorDetails) -> str:
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    if kind == "missing":
        return "Required value"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in _TYPES:
        return f"must be of type {_TYPES[kind]}"
    if kind == "literal_error":
        supported = ", ".join(json.dumps(v) for v in re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"Unsupported value: {_shown(value)}: supported values: {supported}"
    if kind == "string_too_long":
        return f"Too long: may not be more than {ctx['max_length']} characters"
    if kind == "string_too_short":
        return f"Invalid value: {_shown(value)}: should be at least {ctx['min_length']} chars long"
    if kind == "too_long":
        count = len(value) if isinstance(value, list | dict) else ctx.get("actual_length")
        return f"Too many: {count}: must have at most {ctx['max_length']} items"
    if kind == "too_short":
        return f"Invalid value: {ctx.get('actual_length')}: should have at least {ctx['min_length']} items"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        relation = "greater" if kind == "greater_than_equal" else "less"
        return f"Invalid value: {_shown(value)}: should be {relation} than or equal to {bound}"
    return item["msg"].removeprefix("Value error, ")


def format_validation_error(error: ValidationError, root: str = "spec") -> str:
    """One line per problem, each naming the field the way kubectl does: `spec.input.gcs.uris[0]: ...`."""
    lines = []
    for item in error.errors():
        path = root
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        lines.append(f"{path}: {_message(item)}")
    return "; ".join(lines)
