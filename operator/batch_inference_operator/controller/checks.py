"""Preflight and output scans, orchestrated over the data adapters; the rules themselves are in core.

Synchronous (the Google data clients are): the executor runs these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from ..api import BatchInferenceJobStatus, PreflightReport
from ..core.actions import RunPreflight
from ..core.preflight_bigquery import bigquery_input_problems, region_problem
from ..core.preflight_gcs import bucket_region_problem, listed_twice
from ..core.preflight_jsonl import Preflight
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


def preflight(gcs: Objects, bigquery: Tables, action: RunPreflight) -> tuple[PreflightReport, list[str]]:
    """The input's report and the problems found (none: submit)."""
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
        problems += bigquery_input_problems(uri, table.columns, table.rows)
        return PreflightReport(requests=table.rows or 0, bytes=table.bytes), problems
    check = Preflight()
    named: dict[str, str] = {}  # each file, by the input URI that named it first
    for uri in action.uris:
        for path, size in gcs.objects(uri):
            if path in named:
                problems.append(listed_twice(path, named[path], uri))
                continue
            named[path] = uri
            check.check_file(path, size, gcs.lines(path))
            if check.failed:
                return check.report(), problems + [str(v) for v in check.violations]
    return check.report(), problems


def scan_output(gcs: Objects, bigquery: Tables, output_location: str, status: BatchInferenceJobStatus) -> OutputScan:
    """An attempt's output: a BigQuery table is summed by a query, a Cloud Storage file is streamed."""
    if is_bigquery(output_location):
        return bigquery.scan(output_location, status.project or "", status.location or "")
    return scan_stream(gcs.chunks(predictions_file(output_location)))
