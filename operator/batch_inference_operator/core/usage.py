"""Token usage, cache effectiveness and row outcomes of a batch output.

Pure. For Cloud Storage, `scan()` takes an iterable of JSONL lines (the storage adapter streams
them) and never holds more than one row; orjson parses, as it is faster than the standard library on
these rows (see benchmarks/bench_preflight_usage.py). For BigQuery, `usage_query()` is the same
computation as one SQL query, run where the table is, and `from_totals()` reads its single row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..api import RowCounts, Usage
from .outcomes import TRANSIENT_PATTERN, USAGE_FIELDS, is_transient, summed


def scan(lines: Iterable[bytes], loads: Callable[[bytes], Any] = orjson.loads) -> tuple[Usage, RowCounts]:
    """Sum usageMetadata over successful rows and count rows by outcome. (`loads` is swappable for the
    benchmark's standard-library baseline.)"""
    usage = Usage()
    rows = RowCounts()
    totals = dict.fromkeys(USAGE_FIELDS.values(), 0)
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
        for wire, name in USAGE_FIELDS.items():
            totals[name] += int(metadata.get(wire) or 0)
    return summed(usage, rows, totals)


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
        for wire, name in USAGE_FIELDS.items()
    ]
    return f"SELECT {', '.join(columns)} FROM (SELECT {outcome} AS outcome, response FROM `{table_id}`)"


def from_totals(row: dict[str, Any]) -> tuple[Usage, RowCounts]:
    """The single row `usage_query()` returns (NULL sums of an empty table count as zero)."""
    rows = RowCounts(**{name: int(row.get(name) or 0) for name in RowCounts.model_fields})
    totals = {name: int(row.get(name) or 0) for name in USAGE_FIELDS.values()}
    return summed(Usage(), rows, totals)
