"""Each input row's stable key, computed the same way from an input row and from its output row.

Vertex sets no per-request id and writes output rows in another order than the input, so results are
joined to requests by a key: the row's own `keyField` (default `key`; Vertex echoes extra top-level
fields on every output row), else a content key, `sha256:` + the hex SHA-256 of the request's canonical
JSON. Vertex re-serializes the echoed `request` (snake_case names come back camelCase, unset members
as `null`), so the canonical form undoes both: keys camelCase, null members dropped, keys sorted, no
whitespace. Pure.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

CONTENT_KEY_PREFIX = "sha256:"


def camel(name: str) -> str:
    """A proto field's JSON name: `system_instruction` -> `systemInstruction`; camelCase stays."""
    if "_" not in name:
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def canonical(value: Any) -> Any:
    """The request as Vertex's re-serialization and the input both reduce to."""
    if isinstance(value, dict):
        return {camel(str(key)): canonical(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def canonical_request_hash(request: Any) -> str:
    """`sha256:<hex>` over the request's canonical JSON."""
    encoded = orjson.dumps(canonical(request), option=orjson.OPT_SORT_KEYS)
    return CONTENT_KEY_PREFIX + hashlib.sha256(encoded).hexdigest()


def row_key(row: dict[str, Any], key_field: str) -> str:
    """The row's key: its `key_field` value (a string as is, a number as its decimal text), else the
    content key of its request."""
    value = row.get(key_field)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and value != "":
        return orjson.dumps(canonical(value), option=orjson.OPT_SORT_KEYS).decode()
    return canonical_request_hash(row.get("request"))
