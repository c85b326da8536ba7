"""How a row of Vertex's output is classified: succeeded, failed (transient or permanent) or incomplete,
and how token counts are summed. Written once; `usage.py` applies it to JSONL rows and turns it into SQL.
"""

from __future__ import annotations

import re

from ..api import RowCounts, Usage

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


def summed(usage: Usage, rows: RowCounts, totals: dict[str, int]) -> tuple[Usage, RowCounts]:
    for name, value in totals.items():
        setattr(usage, name, value)
    usage.requests = rows.succeeded + rows.failed_transient + rows.failed_permanent + rows.incomplete
    usage.succeeded = rows.succeeded
    usage.failed = rows.failed_transient + rows.failed_permanent
    usage.cache_hit_ratio = round(usage.cached_tokens / usage.prompt_tokens, 4) if usage.prompt_tokens else 0.0
    return usage, rows
