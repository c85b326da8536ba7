"""The JSON types Vertex requires of a GenerateContentRequest's fields. Vertex imports a row whose
`contents` is a string, then fails that row with INVALID_ARGUMENT after the queue; preflight names it
first. Only fields whose type is certain are checked (REST accepts lowerCamel and snake_case names);
unknown fields are left to Vertex. Pure.
"""

from __future__ import annotations

from typing import Any

_ARRAY, _OBJECT, _STRING = "an array", "an object", "a string"
# request field (both spellings) -> the JSON type Vertex's GenerateContentRequest requires
_REQUEST_FIELDS = {
    "contents": _ARRAY,
    "systemInstruction": _OBJECT,
    "system_instruction": _OBJECT,
    "tools": _ARRAY,
    "toolConfig": _OBJECT,
    "tool_config": _OBJECT,
    "generationConfig": _OBJECT,
    "generation_config": _OBJECT,
    "safetySettings": _ARRAY,
    "safety_settings": _ARRAY,
    "labels": _OBJECT,
    "cachedContent": _STRING,
    "cached_content": _STRING,
}
_NAMES = {list: _ARRAY, dict: _OBJECT, str: _STRING, bool: "a boolean", int: "a number", float: "a number"}


def _kind(value: Any) -> str:
    return _NAMES.get(type(value), "null")


def _says(path: str, value: Any, expected: str) -> tuple[str, str]:
    return (
        "request-field-type",
        f"{path} is {_kind(value)}, but Vertex requires {expected} there and fails the row (INVALID_ARGUMENT)",
    )


def _content_problems(path: str, content: Any) -> list[tuple[str, str]]:
    """A Content: an object whose `role` is a string and whose `parts` is an array of objects."""
    if not isinstance(content, dict):
        return [_says(path, content, "a Content object")]
    role, parts = content.get("role"), content.get("parts")
    if role is not None and not isinstance(role, str):
        return [_says(f"{path}.role", role, _STRING)]
    if parts is None:
        return []
    if not isinstance(parts, list):
        return [_says(f"{path}.parts", parts, "an array of Part objects")]
    for part in parts:
        if not isinstance(part, dict):
            return [_says(f"{path}.parts[]", part, "a Part object")]
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            return [_says(f"{path}.parts[].text", text, _STRING)]
    return []


def request_field_problems(request: dict[str, Any]) -> list[tuple[str, str]]:
    """(rule, detail) for the first field of `request` whose JSON type Vertex would refuse, if any."""
    for name, expected in _REQUEST_FIELDS.items():
        value = request.get(name)
        if value is None:
            continue
        if _kind(value) != expected:
            return [_says(f"request.{name}", value, expected)]
    for index, content in enumerate(request.get("contents") or []):
        problems = _content_problems(f"request.contents[{index}]", content)
        if problems:
            return problems
    instruction = request.get("systemInstruction") or request.get("system_instruction")
    if instruction is not None:
        return _content_problems("request.systemInstruction", instruction)
    return []
