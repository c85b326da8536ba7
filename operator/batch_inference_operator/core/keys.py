"""Every input row's stable key, and the duplicates among them.

A row's key is the user's own (the top-level field `spec.input.keyField`, default `key`), else a content
key: `sha256:` and the hex SHA-256 of the request's canonical JSON. Vertex re-serializes the `request` it
echoes into each output row (camelCase names, no null members, its own member order), so the canonical
form undoes exactly that: members sorted, no whitespace, null members dropped, snake_case names turned
camelCase. The same function over an output row's `request` gives the key of the input row it answers.

Duplicates are found in flat memory: 8 bytes per row (a 64-bit digest of the key, kept in a bytearray),
sorted once at the end; only the few duplicated digests are then looked up again, with their line numbers,
in a second pass over the input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

CONTENT_KEY_PREFIX = "sha256:"
MAX_DUPLICATES_REPORTED = 5
MAX_LINES_PER_DUPLICATE = 5
_encode = msgspec.json.Encoder(order="sorted").encode


def camel(name: str) -> str:
    """`system_instruction` -> `systemInstruction`; a name without `_` (or only leading ones) is kept."""
    if "_" not in name.strip("_"):
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest if part)


def canonical(value: Any) -> Any:
    """The request as Vertex echoes it, up to member order (which the encoder sorts)."""
    if isinstance(value, dict):
        return {camel(key): canonical(child) for key, child in value.items() if child is not None}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def content_key(request: Any) -> str:
    """The key of a row that carries none of its own: a hash of its canonical request."""
    return CONTENT_KEY_PREFIX + hashlib.sha256(_encode(canonical(request))).hexdigest()


def row_key(row: dict[str, Any], key_field: str) -> str | None:
    """The row's key: its own (a string, or an integer written in decimal), else its content key.
    None: the field holds something that cannot be a key (an object, a list, a float, a boolean)."""
    own = row.get(key_field)
    if own is None:
        return content_key(row.get("request"))
    if isinstance(own, str):
        return own
    if isinstance(own, int) and not isinstance(own, bool):
        return str(own)
    return None


def digest(key: str) -> bytes:
    """64 bits of the key: two different keys share one with odds of about n^2 / 2^65 (a second pass confirms)."""
    return hashlib.blake2b(key.encode(), digest_size=8).digest()


@dataclass
class KeyDigests:
    """The digests of every row's key, 8 bytes each; `duplicated()` sorts them once and returns the repeats."""

    data: bytearray = field(default_factory=bytearray)

    def add(self, key: str) -> None:
        self.data += digest(key)

    def __len__(self) -> int:
        return len(self.data) // 8

    def duplicated(self, most: int = MAX_DUPLICATES_REPORTED) -> list[bytes]:
        """Digests seen more than once (at most `most` of them, in sorted order)."""
        if len(self.data) < 16:
            return []
        import numpy  # only here: the operator's idle memory stays without it

        values = numpy.sort(numpy.frombuffer(bytes(self.data), dtype="<u8"))
        repeats = numpy.unique(values[1:][values[1:] == values[:-1]])[:most]
        return [int(value).to_bytes(8, "little") for value in repeats]


@dataclass
class DuplicateLines:
    """The second pass: the lines (with their files) of each duplicated digest, and the key itself."""

    wanted: set[bytes]
    found: dict[bytes, tuple[str, list[tuple[str, int]]]] = field(default_factory=dict)

    def see(self, key: str, uri: str, line: int) -> None:
        value = digest(key)
        if value not in self.wanted:
            return
        first, lines = self.found.setdefault(value, (key, []))
        if first == key and len(lines) < MAX_LINES_PER_DUPLICATE:  # another key: a collision of digests
            lines.append((uri, line))

    def problems(self, key_field: str) -> list[str]:
        """One message per duplicated key, with where it is (a digest collision of two keys is left out)."""
        out = []
        for key, lines in self.found.values():
            if len(lines) < 2:
                continue
            where = _where(lines)
            what = "requests with the same content" if key.startswith(CONTENT_KEY_PREFIX) else f"key {key!r}"
            hint = (
                f"give each row a unique {key_field!r} field, or drop the repeats"
                if key.startswith(CONTENT_KEY_PREFIX)
                else f"each row's {key_field!r} must be unique"
            )
            out.append(f"duplicate {what} at {where}: {hint} [duplicate-key]")
        return out


def _where(lines: list[tuple[str, int]]) -> str:
    """`gs://b/in.jsonl lines 3 and 9` (files named once each)."""
    parts: list[str] = []
    for uri in dict.fromkeys(uri for uri, _ in lines):
        numbers = [str(n) for u, n in lines if u == uri]
        joined = numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " and " + numbers[-1]
        parts.append(f"{uri} line{'s' if len(numbers) > 1 else ''} {joined}")
    return "; ".join(parts)
