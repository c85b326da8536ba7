"""Vertex's import rules for JSONL batch input, applied one line at a time.

Vertex loads the input like a BigQuery load job, so a file fails as a whole (job error code 3) when
any line breaks a rule: every line is a JSON object with a `request` object; keys are valid column
names; no empty objects; nesting at most 15 levels of objects; one type per key across the file; at most
200,000 requests per job and 1 GB per file. Rows from a previous job's output (`response`,
`status`, `processed_time`) are accepted, since resuming feeds that output back as input.

Memory is bounded by the number of distinct key paths, never by the number of lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_REQUESTS = 200_000
MAX_FILE_BYTES = 1 << 30
MAX_DEPTH = 15
# Matched whole (`fullmatch`): `$` would also accept a key ending in a newline.
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
# Keys a previous job's output row carries; their content is Vertex's own, not checked again.
OUTPUT_KEYS = frozenset({"response", "status", "processed_time"})


@dataclass
class ImportViolation(Exception):
    uri: str
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        unit = "row" if self.uri.startswith("bq://") else "line"
        return f"{self.uri} {unit} {self.line}: {self.detail} (rule: {self.rule})"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


@dataclass
class ImportValidator:
    """Feed lines in order with `check`; it raises the first violation, as Vertex's import does."""

    types: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # path -> (type, uri, line)
    requests: int = 0
    columns: dict[str, None] = field(default_factory=dict)  # top-level keys, in order of first appearance
    floats: set[str] = field(default_factory=set)  # top-level keys that held a non-integer number

    def check(self, uri: str, line_number: int, raw: bytes | str) -> dict[str, Any] | None:
        """Validate one line; return the parsed row, or None for a blank line."""
        if not raw.strip():
            return None
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ImportViolation(uri, line_number, "json", f"not valid JSON ({error})") from None
        if not isinstance(row, dict):
            raise ImportViolation(uri, line_number, "object", "each line must be a JSON object")
        request = row.get("request")
        if not isinstance(request, dict):
            raise ImportViolation(uri, line_number, "request", 'each line needs a "request" object')
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            raise ImportViolation(uri, line_number, "max-requests", f"more than {MAX_REQUESTS} requests in the job")
        for key, value in row.items():
            self.columns.setdefault(key)
            if isinstance(value, float):
                self.floats.add(key)
            if key not in OUTPUT_KEYS:
                self._walk(value, key, 1, uri, line_number)
        return row

    def _walk(self, value: Any, path: str, depth: int, uri: str, line: int) -> None:
        name = path.rsplit(".", 1)[-1].rstrip("[]")
        if not COLUMN_NAME.fullmatch(name):
            raise ImportViolation(uri, line, "column-name", f"key {name!r} at {path} is not a valid column name")
        kind = _kind(value)
        if kind == "object" and depth > MAX_DEPTH:
            raise ImportViolation(uri, line, "max-depth", f"{path} is nested deeper than {MAX_DEPTH} levels")
        if kind == "null":
            return
        seen = self.types.get(path)
        if seen is None:
            self.types[path] = (kind, uri, line)
        elif seen[0] != kind:
            raise ImportViolation(
                uri,
                line,
                "one-type-per-key",
                f"{path} is {'an' if kind[0] in 'aeio' else 'a'} {kind} here but {seen[0]} at {seen[1]} line {seen[2]}",
            )
        if kind == "object":
            if not value:
                raise ImportViolation(uri, line, "empty-object", f"{path} is an empty object")
            for key, child in value.items():
                self._walk(child, f"{path}.{key}", depth + 1, uri, line)
        elif kind == "array":
            for item in value:  # a repeated field adds no nesting level
                self._walk(item, f"{path}[]", depth, uri, line)
