"""Token usage, cache effectiveness and row outcomes of a batch output.

Pure. For Cloud Storage, `scan()` takes an iterable of JSONL lines (the storage adapter streams
them) and never holds more than one row. A typed msgspec decoder reads only `status` and the keys of
`response`, skipping the echoed request (most of each row) without building it; the token counts are
decoded only for rows that succeeded. Anything the typed path cannot read is decoded the generic way
and classified by the same rules, so odd rows count exactly as before (benchmarks/bench_preflight_usage.py).
For BigQuery, `usage_query()` is the same computation as one SQL query, run where the table is, and
`from_totals()` reads its single row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson

from ..api import RowCounts, RowError, Usage
from ..api.status import MAX_ROW_ERRORS
from .outcomes import TRANSIENT_PATTERN, USAGE_FIELDS, is_transient, row_error, summed, token_counts


class OutputScan(NamedTuple):
    """What an attempt's output says: usage of the billed rows, rows by outcome, sample failed rows."""

    usage: Usage
    rows: RowCounts
    errors: list[RowError]


class _Row(msgspec.Struct):
    status: str | None = None
    response: dict[str, msgspec.Raw] | None = None


_Count = Annotated[int, msgspec.Meta(ge=0)]
_Tokens = msgspec.defstruct("_Tokens", [(wire, _Count | None, None) for wire in USAGE_FIELDS])
_ROW = msgspec.json.Decoder(_Row)
_TOKENS = msgspec.json.Decoder(_Tokens)


class _Tally:
    """Counts rows by outcome as they are classified."""

    def __init__(self) -> None:
        self.rows = Counter[str]()  # plain counts: a pydantic model's setattr per row showed in profiles
        self.errors: list[RowError] = []
        self.totals = dict.fromkeys(USAGE_FIELDS.values(), 0)

    def failed(self, status: str, number: int) -> None:
        if is_transient(status):
            self.rows["failed_transient"] += 1
        else:
            self.rows["failed_permanent"] += 1
        if len(self.errors) < MAX_ROW_ERRORS:
            self.errors.append(row_error(status, number))

    def succeeded(self, counts: dict[str, int] | None) -> None:
        if counts is None:
            self.rows["unreadable"] += 1
            return
        self.rows["succeeded"] += 1
        for name, value in counts.items():
            self.totals[name] += value

    def generic(self, line: bytes, number: int, loads: Callable[[bytes], Any]) -> None:
        """A row decoded whole, as any JSON value: the rules written for dicts (the slow path and the
        baseline)."""
        try:
            row = loads(line)
        except ValueError:
            self.rows["unreadable"] += 1
            return
        if not isinstance(row, dict):
            self.rows["unreadable"] += 1
            return
        status, response = row.get("status"), row.get("response")
        if not isinstance(status, str | None) or not isinstance(response, dict | None):
            self.rows["unreadable"] += 1
        elif status:
            self.failed(status, number)
        elif not response:
            self.rows["incomplete"] += 1
        else:
            self.succeeded(token_counts(response.get("usageMetadata")))

    def scan(self) -> OutputScan:
        usage, rows = summed(Usage(), RowCounts(**self.rows), self.totals)
        return OutputScan(usage, rows, self.errors)


def _typed_counts(raw: msgspec.Raw | None) -> dict[str, int] | None:
    if raw is None:
        return token_counts(None)
    try:
        tokens = _TOKENS.decode(raw)
    except msgspec.ValidationError:  # null, "", false... : the generic rule decides
        try:
            return token_counts(orjson.loads(bytes(raw)))
        except ValueError:
            return None
    return {name: getattr(tokens, wire) or 0 for wire, name in USAGE_FIELDS.items()}


def scan(lines: Iterable[bytes], loads: Callable[[bytes], Any] | None = None) -> OutputScan:
    """Sum usageMetadata over successful rows and count rows by outcome. A row that is not JSON, or not
    shaped as Vertex writes rows, is counted as unreadable and never raises: one corrupt line must not
    stop the resource. `loads` (the benchmark's standard-library baseline) decodes whole rows instead."""
    tally = _Tally()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if loads is not None:
            tally.generic(line, number, loads)
        else:
            _classify(tally, line, number, line.isascii())
    return tally.scan()


def scan_stream(chunks: Iterable[bytes]) -> OutputScan:
    """`scan()` of the lines of a byte stream cut anywhere (as the storage adapter reads it), without
    copying each line out of its chunk: rows are decoded from views into the chunk, and only a row
    cut by a chunk's end is joined. Same lines, same numbers, same result as `scan()` of the lines
    split on \\n; the copy per line was most of the scan's time once decoding was selective."""
    tally = _Tally()
    number, pending = 0, b""
    for chunk in chunks:
        end = chunk.rfind(b"\n")
        if end < 0:
            pending += chunk
            continue
        first = chunk.find(b"\n")
        number += 1
        head = pending + chunk[:first]
        if head.strip():
            _classify(tally, head, number, head.isascii())
        number = _scan_lines(tally, chunk, first + 1, end, number)
        pending = chunk[end + 1 :]
    if pending:
        number += 1
        if pending.strip():
            _classify(tally, pending, number, pending.isascii())
    return tally.scan()


_BLANK = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() strips


def _scan_lines(tally: _Tally, chunk: bytes, start: int, end: int, number: int) -> int:
    """The lines of chunk[start:end] (each ended by the \\n at its end), classified from views; returns
    the number of the last line."""
    view, ascii_only, find = memoryview(chunk), chunk.isascii(), chunk.find
    while start <= end:
        stop = find(b"\n", start, end + 1)
        number += 1
        line = view[start:stop]
        start = stop + 1
        if (not line or line[0] in _BLANK) and not bytes(line).strip():  # a row starting with "{" is not blank
            continue
        _classify(tally, line, number, ascii_only)
    return number


def _classify(tally: _Tally, line: bytes | memoryview, number: int, ascii_only: bool) -> None:
    """One non-blank row, decoded selectively (its echoed request skipped, never built)."""
    try:
        if not ascii_only:
            str(line, "utf-8")  # skipped strings are not checked by msgspec; invalid UTF-8 is unreadable
        row = _ROW.decode(line)
    except msgspec.ValidationError:  # not shaped as Vertex writes rows, or not JSON further on
        tally.generic(line, number, orjson.loads)
        return
    except ValueError:
        tally.rows["unreadable"] += 1
        return
    if row.status:
        tally.failed(row.status, number)
    elif not row.response:
        tally.rows["incomplete"] += 1
    else:
        tally.succeeded(_typed_counts(row.response.get("usageMetadata")))


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
