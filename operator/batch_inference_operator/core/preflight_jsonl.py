"""Check JSONL input against Vertex's import rules before paying for a place in Vertex's queue.

Vertex imports the input like a BigQuery load and fails the whole job (error code 3) on the first
line that breaks a rule, often after hours in the queue. The same rules, applied here while
streaming: each line a JSON object with a `request` object; no empty objects; keys that are valid
column names; at most 15 levels of nested objects; one JSON type per key across all lines; at most
200,000 requests per job and 1 GB per file. Beyond the import, it refuses what Vertex fails later: a
file without requests (0 bytes or blank lines), and request fields of a type Vertex refuses per row
(`request_fields`). Pure: lines in, a report or violations out; memory grows with the number of
distinct keys, row shapes and prompt prefixes, never with the lines.

It also counts requests whose prompt shares its first 2,048 tokens (8,192 characters) with an
earlier request: implicit caching should make those cheaper, which the usage report later checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..api import PreflightReport
from .request_fields import request_field_problems
from .wording import article

MAX_REQUESTS = 200_000
MAX_FILE_BYTES = 1 << 30
MAX_NESTING = 15
CACHE_PREFIX_CHARS = 2048 * 4
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
# Keys Vertex writes in output rows: an input row carrying them would be passed through, unbilled and
# unprocessed (how resume works), so a first attempt's input must not have them.
_VERTEX_OUTPUT_KEYS = frozenset({"response", "status", "processed_time"})
MAX_REPORTED = 5
MAX_SAMPLES = 16


@dataclass(frozen=True)
class Violation:
    uri: str
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.uri} line {self.line}: {self.detail} [{self.rule}]"


_KINDS: dict[type, str | None] = {
    type(None): None,
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _shape(value: Any) -> Any:
    """What the import rules depend on: keys, JSON types and nesting, not the values. Rows of one shape
    pass or fail the rules alike, so a shape that passed once is not walked again (the walk, not the
    parse, was most of preflight's time)."""
    kind = type(value)
    if kind is dict:
        return tuple([(key, _shape(child)) for key, child in value.items()])
    if kind is list:
        return (list, *[_shape(item) for item in value])
    return kind


@dataclass
class Preflight:
    """Feed files with `check_file`; read `violations` and `report()` at the end."""

    violations: list[Violation] = field(default_factory=list)
    loads: Callable[[bytes], Any] = msgspec.json.decode  # swappable for the benchmark's baseline
    requests: int = 0
    files: int = 0
    bytes: int = 0
    _types: dict[str, str] = field(default_factory=dict)
    _passed: set[Any] = field(default_factory=set)  # shapes that passed the rules
    _prefixes: set[int] = field(default_factory=set)
    _samples: dict[tuple[str, str], str] = field(default_factory=dict)
    _shared: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.violations)

    def _flag(self, uri: str, line: int, rule: str, detail: str) -> None:
        if len(self.violations) < MAX_REPORTED:
            self.violations.append(Violation(uri, line, rule, detail))

    def check_file(self, uri: str, size: int, lines: Iterable[bytes]) -> None:
        self.files += 1
        self.bytes += size
        if size > MAX_FILE_BYTES:
            self._flag(uri, 0, "file-size", f"{size} bytes is over the 1 GB limit per file")
        before, seen = self.requests, 0
        for number, raw in enumerate(lines, 1):
            seen = number
            if raw.strip():
                self._check_line(uri, number, raw)
            if len(self.violations) >= MAX_REPORTED:
                return
        if self.requests == before and not self.failed:
            what = f"holds only {seen} blank line{'s' if seen > 1 else ''}" if seen else "is empty (0 bytes)"
            self._flag(uri, 0, "empty-file", f"the file {what}: Vertex fails a job whose input has no requests")

    def _check_line(self, uri: str, number: int, raw: bytes) -> None:
        try:
            row = self.loads(raw)
        except ValueError as error:  # msgspec's, orjson's and json's decode errors are all ValueErrors
            self._flag(uri, number, "json", f"not valid JSON: {error}")
            return
        if not isinstance(row, dict) or not isinstance(row.get("request"), dict):
            self._flag(uri, number, "request", 'every line must be a JSON object with a "request" object')
            return
        self.requests += 1
        if self.requests == MAX_REQUESTS + 1:
            self._flag(uri, number, "max-requests", f"more than {MAX_REQUESTS} requests in one job")
        reserved = sorted(_VERTEX_OUTPUT_KEYS & row.keys())
        if reserved:
            self._flag(
                uri,
                number,
                "reserved-key",
                f"{reserved[0]!r} is a key Vertex writes in its output rows; a new job's input must not carry it "
                "(Vertex would pass the row through unprocessed): rename or remove it",
            )
            return
        shape = _shape(row)
        if shape not in self._passed:
            problems: list[tuple[str, str]] = []
            for key, value in row.items():
                self._walk(key, value, 1, problems)
            problems += request_field_problems(row["request"])  # after the import's own rules
            for rule, detail in problems[:1]:
                self._flag(uri, number, rule, detail)
            if not problems:
                self._passed.add(shape)
        self._count_prefix(row["request"])

    def _walk(self, path: str, value: Any, depth: int, problems: list[tuple[str, str]]) -> None:
        key = path.rsplit(".", 1)[-1].rstrip("[]")
        if not _COLUMN.fullmatch(key):
            problems.append(
                (
                    "column-name",
                    f"key {key!r} ({path}) is not a valid column name: letters, digits "
                    "and underscores, not starting with a digit",
                )
            )
        kind = _KINDS[type(value)]
        if kind is None:
            return
        known = self._types.setdefault(path, kind)
        if known != kind:
            problems.append(
                ("one-type-per-key", f"{path} is {article(kind)} here but {article(known)} on an earlier line")
            )
        if kind == "object":
            if depth > MAX_NESTING:
                problems.append(("max-nesting", f"{path} is nested more than {MAX_NESTING} levels deep"))
            if not value:
                problems.append(("empty-object", f"{path} is an empty object, which Vertex's import rejects"))
            for child_key, child in value.items():
                self._walk(f"{path}.{child_key}", child, depth + 1, problems)
        elif kind == "array":
            for item in value:
                self._walk(f"{path}[]", item, depth, problems)

    def _count_prefix(self, request: dict[str, Any]) -> None:
        texts: list[str] = []
        for holder in [
            request.get("systemInstruction") or request.get("system_instruction") or {},
            *(request.get("contents") or []),
        ]:
            if isinstance(holder, dict):
                texts += [
                    p["text"]
                    for p in holder.get("parts") or []
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                ]
        prompt = "".join(texts)
        if len(prompt) < CACHE_PREFIX_CHARS:
            return
        prefix = prompt[:CACHE_PREFIX_CHARS]
        # Most shared prefixes are one long system instruction: compare with a kept sample (a memcmp)
        # before hashing 8 KB; a few samples are kept, so memory stays flat.
        sample_key = (prefix[:64], prefix[-64:])
        if self._samples.get(sample_key) == prefix:
            self._shared += 1
            return
        digest = hash(prefix)  # 64 bits, this process only: collisions are negligible at 200,000 prompts
        if digest in self._prefixes:
            self._shared += 1
        else:
            self._prefixes.add(digest)
            if len(self._samples) < MAX_SAMPLES:
                self._samples.setdefault(sample_key, prefix)

    def report(self) -> PreflightReport:
        return PreflightReport(
            requests=self.requests, shared_prefix_requests=self._shared, files=self.files, bytes=self.bytes
        )

    def summary(self) -> str:
        return rejection([str(v) for v in self.violations])


def rejection(problems: list[str]) -> str:
    """The resource's message when preflight refuses the input, one clause per problem."""
    return "input rejected by preflight: " + "; ".join(problems)
