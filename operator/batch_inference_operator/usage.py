"""Token usage, cache effectiveness and row outcomes of a batch output.

Pure. For Cloud Storage, `scan()` takes an iterable of JSONL lines (the storage adapter streams
them) and never holds more than one row; orjson parses, as it is faster than the standard library on
these rows (see benchmarks/bench_preflight_usage.py). For BigQuery, `usage_query()` is the same
computation as one SQL query, run where the table is, and `from_totals()` reads its single row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson

from .api import RowCounts, Usage

# A failed row's `status` names its error; 429, 5xx and "internal" are worth retrying, a 400 is not.
# Written in the common subset of Python `re` and RE2 (BigQuery's REGEXP_CONTAINS).
TRANSIENT_PATTERN = r'"code":\s*(429|500|502|503|504)\b|^(Too Many Requests|Internal error|Service Unavailable)'
_TRANSIENT = re.compile(TRANSIENT_PATTERN)
_USAGE_FIELDS = {
    "promptTokenCount": "prompt_tokens",
    "cachedContentTokenCount": "cached_tokens",
    "candidatesTokenCount": "candidates_tokens",
    "thoughtsTokenCount": "thoughts_tokens",
    "totalTokenCount": "total_tokens",
}


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens at the standard (online) price."""

    input: Decimal
    output: Decimal


# Gemini list prices per million tokens (standard, text, prompts up to 200k tokens). Operators
# override them with BIJ_PRICES; a model missing here gets no cost estimate rather than a wrong one.
DEFAULT_PRICES: dict[str, Price] = {
    "gemini-2.5-pro": Price(Decimal("1.25"), Decimal("10.00")),
    "gemini-2.5-flash": Price(Decimal("0.30"), Decimal("2.50")),
    "gemini-2.5-flash-lite": Price(Decimal("0.10"), Decimal("0.40")),
    "gemini-2.0-flash-001": Price(Decimal("0.15"), Decimal("0.60")),
    "gemini-2.0-flash-lite-001": Price(Decimal("0.075"), Decimal("0.30")),
}
BATCH_DISCOUNT = Decimal("0.5")  # batch pays half
CACHED_INPUT_FACTOR = Decimal("0.1")  # cached input pays 10 %, instead of (not on top of) the batch half


def is_transient(status: str) -> bool:
    return bool(_TRANSIENT.search(status))


def scan(lines: Iterable[bytes], loads: Callable[[bytes], Any] = orjson.loads) -> tuple[Usage, RowCounts]:
    """Sum usageMetadata over successful rows and count rows by outcome. (`loads` is swappable for the
    benchmark's standard-library baseline.)"""
    usage = Usage()
    rows = RowCounts()
    totals = dict.fromkeys(_USAGE_FIELDS.values(), 0)
    for line in lines:
        if not line.strip():
            continue
        row = loads(line)
        status = row.get("status") or ""
        response = row.get("response")
        if status:
            if is_transient(status):
                rows.failed_transient += 1
            else:
                rows.failed_permanent += 1
            continue
        if not response:
            rows.incomplete += 1
            continue
        rows.succeeded += 1
        metadata = response.get("usageMetadata") or {}
        for wire, name in _USAGE_FIELDS.items():
            totals[name] += int(metadata.get(wire) or 0)
    return _summed(usage, rows, totals)


def _summed(usage: Usage, rows: RowCounts, totals: dict[str, int]) -> tuple[Usage, RowCounts]:
    for name, value in totals.items():
        setattr(usage, name, value)
    usage.requests = rows.succeeded + rows.failed_transient + rows.failed_permanent + rows.incomplete
    usage.succeeded = rows.succeeded
    usage.failed = rows.failed_transient + rows.failed_permanent
    usage.cache_hit_ratio = round(usage.cached_tokens / usage.prompt_tokens, 4) if usage.prompt_tokens else 0.0
    return usage, rows


def usage_query(table_id: str) -> str:
    """`scan()` as one GoogleSQL query over a BigQuery output table (`project.dataset.table`): the rows
    stay in BigQuery, one row of sums comes back. A row succeeded when its status is empty and its
    response is not; failed when it has a status; otherwise it never ran (incomplete)."""
    outcome = (
        "CASE WHEN IFNULL(status, '') != '' THEN "
        f"IF(REGEXP_CONTAINS(status, r'{TRANSIENT_PATTERN}'), 'failed_transient', 'failed_permanent') "
        "WHEN response IS NULL OR TO_JSON_STRING(response) = '{}' THEN 'incomplete' ELSE 'succeeded' END"
    )
    columns = [f"COUNTIF(outcome = '{name}') AS {name}" for name in RowCounts.model_fields] + [
        f"SUM(IF(outcome = 'succeeded', IFNULL(LAX_INT64(response.usageMetadata.{wire}), 0), 0)) AS {name}"
        for wire, name in _USAGE_FIELDS.items()
    ]
    return f"SELECT {', '.join(columns)} FROM (SELECT {outcome} AS outcome, response FROM `{table_id}`)"


def from_totals(row: dict[str, Any]) -> tuple[Usage, RowCounts]:
    """The single row `usage_query()` returns (NULL sums of an empty table count as zero)."""
    rows = RowCounts(**{name: int(row.get(name) or 0) for name in RowCounts.model_fields})
    totals = {name: int(row.get(name) or 0) for name in _USAGE_FIELDS.values()}
    return _summed(Usage(), rows, totals)


def model_id(model: str) -> str:
    return model.rsplit("/", 1)[-1].split("@", 1)[0]


def estimate_cost(usage: Usage, model: str, prices: dict[str, Price]) -> str | None:
    """Batch price of the billed (successful) rows: uncached input at half price, cached input at 10 %,
    output and thoughts at half price. None when the model has no price."""
    price = prices.get(model_id(model))
    if price is None:
        return None
    million = Decimal(1_000_000)
    uncached = Decimal(usage.prompt_tokens - usage.cached_tokens)
    output = Decimal(usage.candidates_tokens + usage.thoughts_tokens)
    cost = (
        uncached * price.input * BATCH_DISCOUNT
        + Decimal(usage.cached_tokens) * price.input * CACHED_INPUT_FACTOR
        + output * price.output * BATCH_DISCOUNT
    ) / million
    return str(cost.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def parse_prices(text: str) -> dict[str, Price]:
    """`BIJ_PRICES`: JSON `{"model": {"input": 0.30, "output": 2.50}, ...}` in dollars per million tokens."""
    raw = orjson.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("BIJ_PRICES must be a JSON object of model -> {input, output}")
    prices = {}
    for model, entry in raw.items():
        try:
            prices[model] = Price(Decimal(str(entry["input"])), Decimal(str(entry["output"])))
        except (KeyError, TypeError, ArithmeticError) as error:
            raise ValueError(f"BIJ_PRICES[{model!r}] needs numeric input and output prices ({error})") from None
    return prices
