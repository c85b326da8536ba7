"""The `request` echoed on an output row, as Vertex writes it: parsed into the proto and printed again.

So the echo is not the input's text: field names come back in their JSON (camelCase) spelling whatever
spelling the input used, and a part's unset oneof members appear as explicit `null`s. Keys inside
free-form values (labels, function arguments and responses, JSON schemas) are data, not field names,
and stay as they were. Clients must therefore never compare an echoed request to its input byte for
byte; they join on a key.
"""

from __future__ import annotations

from typing import Any

# Fields whose value is a map or a google.protobuf.Struct: their keys are the user's.
FREE_FORM = frozenset({"labels", "args", "response", "properties", "parametersJsonSchema", "responseJsonSchema"})
# Members of Part's `data` oneof printed as null when another one is set.
PART_DATA = ("inlineData", "fileData")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _message(value: Any) -> Any:
    if isinstance(value, list):
        return [_message(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = camel(key)
        out[name] = item if name in FREE_FORM else _message(item)
    return out


def _with_nulls(parts: Any) -> None:
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            for member in PART_DATA:
                part.setdefault(member, None)


def echoed(request: dict[str, Any]) -> dict[str, Any]:
    """The request as an output row carries it."""
    out = _message(request)
    for content in out.get("contents") or []:
        if isinstance(content, dict):
            _with_nulls(content.get("parts"))
    system = out.get("systemInstruction")
    if isinstance(system, dict):
        _with_nulls(system.get("parts"))
    return out
