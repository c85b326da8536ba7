"""How a job is rendered for one request: `readMask` (a google.protobuf.FieldMask) and enum encoding.

`readMask=displayName,state` keeps only those fields (JSON or proto names, dotted paths into
messages); a path naming no field is 400 INVALID_ARGUMENT. GAPIC clients over REST ask for
`$alt=json;enum-encoding=int`, and get enums as their numbers, as Google's front end sends them.
"""

from __future__ import annotations

from typing import Any

from . import protojson
from .errors import ApiError


def parse_mask(text: str | None) -> list[list[str]] | None:
    """The mask's paths in JSON names, each split at its dots; None when there is no mask."""
    if not text:
        return None
    paths = []
    for raw in text.split(","):
        message, parts = "BatchPredictionJob", []
        for piece in raw.strip().split("."):
            fields = protojson.MESSAGES.get(message)
            name = piece if fields is not None and piece in fields else protojson.camel(piece)
            if fields is None or name not in fields:
                raise ApiError(400, f"Invalid field mask path {raw.strip()!r}: BatchPredictionJob has no such field.")
            parts.append(name)
            message = fields[name].message
        paths.append(parts)
    return paths


def apply(body: dict[str, Any], paths: list[list[str]] | None) -> dict[str, Any]:
    """`body` with only the fields the mask names (all of it without a mask)."""
    if paths is None:
        return body
    kept: dict[str, Any] = {}
    for path in paths:
        source, target = body, kept
        for part in path[:-1]:
            if not isinstance(source.get(part), dict):
                break
            source, target = source[part], target.setdefault(part, {})
        else:
            if path[-1] in source:
                target[path[-1]] = source[path[-1]]
    return kept


def int_enums(alt: str | None) -> bool:
    """True when the request asked for enums as numbers (`$alt=json;enum-encoding=int`)."""
    return bool(alt) and "enum-encoding=int" in alt.replace(" ", "")


def encode_enums(body: dict[str, Any]) -> dict[str, Any]:
    if "state" in body:
        body = {**body, "state": protojson.JOB_STATES.index(body["state"])}
    return body
