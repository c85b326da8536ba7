"""pydantic's validation errors in the apiserver's words, one line per field.

A manifest the operator refuses (`parse_spec`) should read as `kubectl apply` would have said it, so a
user who meets both sees one vocabulary: `Required value`, `unknown field`, `must be of type boolean`,
`Unsupported value: ...: supported values: ...`. Messages of our own checks pass through unchanged.
"""

from __future__ import annotations

import json
import re
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

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


def _unwrapped(annotation: Any) -> Any:
    """The type inside Optional[...] / Annotated[...]."""
    while True:
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) is Annotated or (get_origin(annotation) in (Union, UnionType) and len(args) == 1):
            annotation = args[0]
        else:
            return annotation


def _field_type(model: Any, name: str) -> Any:
    for field_name, info in getattr(model, "model_fields", {}).items():
        if name in (field_name, info.alias):
            return _unwrapped(info.annotation)
    return None


def field_path(loc: tuple[Any, ...], model: Any = None, root: str = "spec", cel: bool = False) -> str:
    """A pydantic error location as the apiserver names it: `uris[0]` for a list item, `.field`
    otherwise; a map entry is `labels.team` in a schema error and `labels[team]` in a CEL rule's
    (`cel`: our own checks, which mirror the CRD's CEL rules)."""
    path, current = root, model
    for part in loc:
        if isinstance(part, int) or (cel and get_origin(current) is dict):
            path += f"[{part}]"
            args = get_args(current)
            current = _unwrapped(args[-1]) if args else None
        else:
            path += f".{part}"
            current = _field_type(current, str(part))
    return path


def format_validation_error(error: ValidationError, root: str = "spec", model: Any = None) -> str:
    """One line per problem, each naming the field the way kubectl does: `spec.input.gcs.uris[0]: ...`."""
    return "; ".join(
        f"{field_path(tuple(item['loc']), model, root, cel=item['type'] == 'value_error')}: {_message(item)}"
        for item in error.errors()
    )
