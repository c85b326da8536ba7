"""Token usage, cache effectiveness and row outcomes of a batch output.

Pure. For Cloud Storage, `scan()` takes an iterable of JSONL lines (the storage adapter streams
them) and never holds more than one row; orjson parses, as it is faster than the standard library on
these rows (see benchmarks/bench_preflight_usage.py). For BigQuery, `usage_query()` is the same
computation as one SQL query, run where the table is, and `from_totals()` reads its single row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import orjson

from ..api import RowCounts, RowError, Usage
from ..api.status import MAX_ROW_ERRORS
from .outcomes import TRANSIENT_PATTERN, USAGE_FIELDS, is_transient, row_error, summed, token_counts


class OutputScan(NamedTuple):
    """What an attempt's output says: usage of the billed rows, rows by outcome, sample failed rows."""

    usage: Usage
    rows: RowCounts
    errors: list[RowError]


def scan(lines: Iterable[bytes], loads: Callable[[bytes], Any] = orjson.loads) -> OutputScan:
    """Sum usageMetadata over successful rows and count rows by outcome. A row that is not JSON, or not
    shaped as Vertex writes rows, is counted as unreadable and never raises: one corrupt line must not
    stop the resource. (`loads` is swappable for the benchmark's standard-library baseline.)"""
    rows = RowCounts()
    errors: list[RowError] = []
    totals = dict.fromkeys(USAGE_FIELDS.values(), 0)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except ValueError:
            rows.unreadable += 1
            continue
        if not isinstance(row, dict):
            rows.unreadable += 1
            continue
        status, response = row.get("status"), row.get("response")
        if not isinstance(status, str | None) or not isinstance(response, dict | None):
            rows.unreadable += 1
            continue
        if status:
            if is_transient(status):
                rows.failed_transient += 1
            else:
                rows.failed_permanent += 1
            if len(errors) < MAX_ROW_ERRORS:
                errors.append(row_error(status, number))
            continue
        if not response:
            rows.incomplete += 1
            continue
        counts = token_counts(response.get("usageMetadata"))
        if counts is None:
            rows.unreadable += 1
            continue
        rows.succeeded += 1
        for name, value in counts.items():
            totals[name] += value
    usage, rows = summed(Usage(), rows, totals)
    return OutputScan(usage, rows, errors)


def usage_query(table_id: str) -> str:
    """`scan()` as one GoogleSQL query over a BigQuery output table (`project.dataset.table`): the rows
    stay in BigQuery, one row of sums comes back. A row succeeded when its status is empty and its
    response is not; failed when it has a status; otherwise it never ran (incomplete)."""
    outcome = (
        "CASE WHEN IFNULL(status, '') != '' THEN "
        f"IF(REGEXP_CONTAINS(status, r'{TRANSIENT_PATTERN}'), 'failed_transient', 'failed_permanent') "
        "WHEN response IS NULL OR TO_JSON_STRING(response) = '{}' THEN 'incomplete' ELSE 'succeeded' END"
    )
    columns = [f"COUNTIF(outcome = '{name}') AS {name}" for name in RowCounts.model_fields if name != "unreadable"] + [
        f"SUM(IF(outcome = 'succeeded', IFNULL(LAX_INT64(response.usageMetadata.{wire}), 0), 0)) AS {name}"
        for wire, name in USAGE_FIELDS.items()
    ]
    return f"SELECT {', '.join(columns)} FROM (SELECT {outcome} AS outcome, response FROM `{table_id}`)"


def row_errors_query(table_id: str) -> str:
    """A few failed rows of an output table, for the resource's status."""
    return f"SELECT status FROM `{table_id}` WHERE IFNULL(status, '') != '' LIMIT {MAX_ROW_ERRORS}"


def from_totals(row: dict[str, Any], statuses: Iterable[str] = ()) -> OutputScan:
    """The single row `usage_query()` returns (NULL sums of an empty table count as zero), and the
    statuses `row_errors_query()` returns. BigQuery types the columns, so no row is unreadable."""
    rows = RowCounts(**{name: int(row.get(name) or 0) for name in RowCounts.model_fields if name != "unreadable"})
    totals = {name: int(row.get(name) or 0) for name in USAGE_FIELDS.values()}
    usage, rows = summed(Usage(), rows, totals)
    return OutputScan(usage, rows, [row_error(status) for status in statuses][:MAX_ROW_ERRORS])
