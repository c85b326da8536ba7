"""Preflight and output scans, orchestrated over the data adapters; the rules themselves are in core.

Synchronous (the Google data clients are): the executor runs these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import msgspec

from ..api import BatchInferenceJobStatus, PreflightReport
from ..core.actions import RunPreflight
from ..core.keys import DuplicateLines, row_key
from ..core.preflight_bigquery import bigquery_input_problems, region_problem
from ..core.preflight_gcs import bucket_region_problem, listed_twice
from ..core.preflight_jsonl import Preflight
from ..core.sharding import PlannedShard, Planner
from ..core.tokens import Tally
from ..core.uris import is_bigquery, predictions_file
from ..core.usage import OutputScan, scan_stream

if TYPE_CHECKING:  # google-cloud-bigquery is imported when a BigQuery job is first checked, not at start
    from ..adapters.bigquery import TableInfo


class Objects(Protocol):
    """What the checks need of Cloud Storage (adapters.gcs.CloudStorage)."""

    def objects(self, uri: str) -> list[tuple[str, int]]: ...
    def lines(self, uri: str) -> Iterable[bytes]: ...
    def chunks(self, uri: str) -> Iterable[bytes]: ...
    def bucket_location(self, uri: str) -> str | None: ...


class Tables(Protocol):
    """What the checks need of BigQuery (adapters.bigquery.BigQuery)."""

    def dataset_location(self, uri: str, project: str, missing: str = ...) -> str: ...
    def table(self, uri: str, project: str) -> TableInfo: ...
    def scan(self, uri: str, project: str, location: str) -> OutputScan: ...
    def duplicate_keys(self, uri: str, key: str, project: str, location: str) -> list[str]: ...


@dataclass
class Checked:
    """What preflight learnt: the report, the problems (none: go on), the token tally, and the shard plan
    (`split`: the input is over a job's limits and must be cut as `shards` say)."""

    report: PreflightReport
    problems: list[str]
    tally: Tally = field(default_factory=Tally)
    shards: list[PlannedShard] = field(default_factory=list)
    split: bool = False
    table_rows: int = 0  # a BigQuery input's rows (its shards are cut by query, in this order)
    order: str = ""


def preflight(gcs: Objects, bigquery: Tables, action: RunPreflight) -> tuple[PreflightReport, list[str]]:
    """The input's report and the problems found (none: submit)."""
    checked = check_input(gcs, bigquery, action)
    return checked.report, checked.problems


def check_input(gcs: Objects, bigquery: Tables, action: RunPreflight) -> Checked:
    """Preflight in full: the rules, duplicate keys, the token tally and, for an input over a job's limits,
    the shard plan. A Cloud Storage input is streamed once (twice when it has duplicate keys, to name
    their lines); a BigQuery table is judged by its metadata."""
    problems: list[str] = []
    if action.bigquery_output:
        location = bigquery.dataset_location(action.bigquery_output, action.project, missing="OutputNotFound")
        problem = region_problem("output dataset", action.bigquery_output, location, action.location)
        problems += [problem] if problem else []
    if action.gcs_output:
        location = gcs.bucket_location(action.gcs_output)
        problem = bucket_region_problem(action.gcs_output, location, action.location) if location else None
        problems += [problem] if problem else []
    if is_bigquery(action.uris[0]):
        uri = action.uris[0]
        table = bigquery.table(uri, action.project)
        problem = region_problem("input table", uri, table.location, action.location)
        problems += [problem] if problem else []
        rows = table.rows or 0
        split = rows > action.max_rows
        problems += bigquery_input_problems(uri, table.columns, table.rows, None if split else action.max_rows)
        tally = Tally()
        tally.input_tokens, tally.requests, tally.unbounded = -(-table.bytes // 4), rows, rows
        report = PreflightReport(requests=rows, bytes=table.bytes)
        names = {column.name for column in table.columns}
        keyed = action.key_field in names
        order = f"`{action.key_field}`" if keyed else "TO_JSON_STRING(request)"
        # Without a key column, identical requests are interchangeable, except when the table is cut by
        # request order: rows that tie could land in two shards, or none.
        if not problems and (keyed or split):
            problems += bigquery.duplicate_keys(uri, order, action.project, action.location)
        return Checked(report, problems, tally, split=split, table_rows=rows, order=order)
    planner = Planner(action.max_rows, action.max_bytes) if action.gcs_output else None
    check = Preflight(planner=planner, key_field=action.key_field)
    named: dict[str, str] = {}  # each file, by the input URI that named it first
    for uri in action.uris:
        for path, size in gcs.objects(uri):
            if path in named:
                problems.append(listed_twice(path, named[path], uri))
                continue
            named[path] = uri
            check.check_file(path, size, gcs.lines(path))
            if check.failed:
                return Checked(check.report(), problems + [str(v) for v in check.violations], check.tally)
    repeated = check.keys.duplicated()
    if repeated:
        problems += duplicate_lines(gcs, list(named), set(repeated), action.key_field)
    shards = planner.finish() if planner is not None else []
    return Checked(check.report(), problems, check.tally, shards, split=planner is not None and planner.split)


def duplicate_lines(gcs: Objects, paths: list[str], repeated: set[bytes], key_field: str) -> list[str]:
    """The second pass, only when keys repeat: the lines of the repeated keys, found by their digests."""
    seen = DuplicateLines(repeated)
    decode = msgspec.json.decode
    for path in paths:
        for number, raw in enumerate(gcs.lines(path), 1):
            if raw.strip():
                key = row_key(decode(raw), key_field)
                if key is not None:
                    seen.see(key, path, number)
    return seen.problems(key_field)


def scan_output(gcs: Objects, bigquery: Tables, output_location: str, status: BatchInferenceJobStatus) -> OutputScan:
    """An attempt's output: a BigQuery table is summed by a query, a Cloud Storage file is streamed."""
    if is_bigquery(output_location):
        return bigquery.scan(output_location, status.project or "", status.location or "")
    return scan_stream(gcs.chunks(predictions_file(output_location)))
