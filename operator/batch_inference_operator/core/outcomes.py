"""How a row of Vertex's output is classified: succeeded, failed (transient or permanent) or incomplete,
and how token counts are summed. Written once; `usage.py` applies it to JSONL rows and turns it into SQL.
"""

from __future__ import annotations

import re

from ..api import RowCounts, RowError, Usage

# A failed row's `status` names its error; 429, 5xx and "internal" are worth retrying, a 400 is not.
# Written in the common subset of Python `re` and RE2 (BigQuery's REGEXP_CONTAINS).
TRANSIENT_PATTERN = r'"code":\s*(429|500|502|503|504)\b|^(Too Many Requests|Internal error|Service Unavailable)'
_TRANSIENT = re.compile(TRANSIENT_PATTERN)
USAGE_FIELDS = {
    "promptTokenCount": "prompt_tokens",
    "cachedContentTokenCount": "cached_tokens",
    "candidatesTokenCount": "candidates_tokens",
    "thoughtsTokenCount": "thoughts_tokens",
    "totalTokenCount": "total_tokens",
}


def is_transient(status: str) -> bool:
    return bool(_TRANSIENT.search(status))


_CODE = re.compile(r'"code":\s*(\d{3})\b')
_MESSAGE = re.compile(r'"message":\s*"((?:[^"\\]|\\.)*)"')
MESSAGE_CHARS = 300


def row_error(status: str, line: int | None = None) -> RowError:
    """A failed row's `status` text as a sample error: its HTTP code and inner message when Vertex gives
    them (`Bad Request: {"error": {"code": 400, "message": ...}}`), else the text itself."""
    code = _CODE.search(status)
    message = _MESSAGE.search(status)
    text = message.group(1) if message else status
    return RowError(line=line, code=int(code.group(1)) if code else None, message=text[:MESSAGE_CHARS])


def token_counts(metadata: object) -> dict[str, int] | None:
    """A successful row's usageMetadata as token counts; None when it is not shaped as Vertex writes it
    (counts are integers, absent when zero)."""
    if metadata is None:
        return dict.fromkeys(USAGE_FIELDS.values(), 0)
    if not isinstance(metadata, dict):
        return None
    counts = {}
    for wire, name in USAGE_FIELDS.items():
        value = metadata.get(wire) or 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        counts[name] = value
    return counts


def summed(usage: Usage, rows: RowCounts, totals: dict[str, int]) -> tuple[Usage, RowCounts]:
    for name, value in totals.items():
        setattr(usage, name, value)
    usage.unreadable_rows = rows.unreadable
    usage.requests = rows.succeeded + rows.failed_transient + rows.failed_permanent + rows.incomplete
    usage.succeeded = rows.succeeded
    usage.failed = rows.failed_transient + rows.failed_permanent
    usage.cache_hit_ratio = round(usage.cached_tokens / usage.prompt_tokens, 4) if usage.prompt_tokens else 0.0
    return usage, rows
