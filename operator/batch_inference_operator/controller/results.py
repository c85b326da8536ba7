"""The ledger's joins performed over the data adapters: the input rows an attempt's output lacks (written
to a file the next attempt reads), and the results manifest of a finished resource.

Synchronous (the Google data clients are): the executor runs these in a worker thread. Shards are
joined one after another, so memory holds one shard's output index at a time; the manifest itself is
streamed to Cloud Storage as it is produced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, Protocol

import orjson

from ..adapters.errors import AdapterError
from ..core.actions import ScanOutput, WriteManifest
from ..core.ledger import (
    Entry,
    InputRow,
    OutputIndex,
    Shard,
    Totals,
    index_output,
    index_rows,
    input_rows,
    join,
    key_of,
    manifest_lines,
)
from ..core.permissions import FORBIDDEN
from ..core.uris import is_bigquery, is_gcs, predictions_file

# Custom metadata on a manifest or missing-rows file: which outputs it was computed from. An object
# found with the same value is the one a restarted write would make again, and is kept.
SOURCE_METADATA = "bij-ledger-source"
MANIFEST_SCHEMA = (
    ("key", "STRING"),
    ("outcome", "STRING"),
    ("shard", "INT64"),
    ("table", "STRING"),
    ("row", "INT64"),
    ("error", "STRING"),
    ("input", "STRING"),
    ("inputLine", "INT64"),
    ("inputRow", "INT64"),
)


class Files(Protocol):
    """What the ledger needs of Cloud Storage (adapters.gcs.CloudStorage)."""

    def objects(self, uri: str) -> list[tuple[str, int]]: ...
    def lines(self, uri: str) -> Iterable[bytes]: ...
    def object_metadata(self, uri: str) -> tuple[int, dict[str, str]] | None: ...
    def write_lines(
        self, uri: str, lines: Iterable[bytes], metadata: dict[str, str], generation: int = ...
    ) -> None: ...


class Tables(Protocol):
    """What the ledger needs of BigQuery (adapters.bigquery.BigQuery)."""

    def rows(self, uri: str, project: str, columns: Iterable[str]) -> Iterator[dict[str, Any]]: ...
    def load_rows(self, uri: str, project: str, location: str, rows: Iterable[dict[str, Any]], schema: Any) -> None: ...


def source_tag(shards: Iterable[Shard], key_field: str) -> str:
    text = "\n".join(f"{s.index} {' '.join(s.inputs)} {s.output}" for s in shards) + f"\n{key_field}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _with_request(row: dict[str, Any]) -> dict[str, Any]:
    """A BigQuery row whose `request` column is STRING (older samples) holds JSON text: key it parsed."""
    request = row.get("request")
    if isinstance(request, str):
        try:
            return {**row, "request": orjson.loads(request)}
        except orjson.JSONDecodeError:
            return row
    return row


def _inputs(gcs: Files, bigquery: Tables, shard: Shard, key_field: str, project: str) -> Iterator[InputRow]:
    for uri in shard.inputs:
        if is_bigquery(uri):
            for number, row in enumerate(bigquery.rows(uri, project, (key_field, "request")), 1):
                yield InputRow(uri, number, key_of(_with_request(row), key_field), None)
        else:
            for path, _size in gcs.objects(uri):
                yield from input_rows(path, gcs.lines(path), key_field)


def _index(gcs: Files, bigquery: Tables, output: str | None, key_field: str, project: str) -> OutputIndex:
    if output is None:
        return OutputIndex()
    if is_bigquery(output):
        columns = (key_field, "request", "response", "status")
        rows = (_with_request(row) for row in bigquery.rows(output, project, columns))
        return index_rows(enumerate(rows, 1), key_field)
    return index_output(gcs.lines(output), key_field)


def entries(gcs: Files, bigquery: Tables, action: WriteManifest, totals: Totals) -> Iterator[Entry]:
    """Every shard's manifest rows, shard after shard."""
    for shard in action.shards:
        index = _index(gcs, bigquery, shard.output, action.key_field, action.project)
        yield from join(shard, _inputs(gcs, bigquery, shard, action.key_field, action.project), index, totals)


def write_manifest(gcs: Files, bigquery: Tables, action: WriteManifest) -> Totals:
    """Join and write the manifest; the row totals. A manifest already written from the same outputs (by
    a try that crashed before recording it) is kept, and only counted again."""
    totals = Totals()
    rows = entries(gcs, bigquery, action, totals)
    if is_bigquery(action.uri):
        bigquery.load_rows(action.uri, action.project, action.location, (e.row for e in rows), MANIFEST_SCHEMA)
        return totals
    tag = source_tag(action.shards, action.key_field)
    _write_once(gcs, action.uri, manifest_lines(rows), tag)
    return totals


def _write_once(gcs: Files, uri: str, lines: Iterator[bytes], tag: str) -> None:
    existing = gcs.object_metadata(uri)
    if existing is not None and existing[1].get(SOURCE_METADATA) == tag:
        for _ in lines:  # the same content is there: the totals still come from the join
            pass
        return
    gcs.write_lines(uri, lines, {SOURCE_METADATA: tag}, generation=existing[0] if existing else 0)


def find_missing(gcs: Files, bigquery: Tables, action: ScanOutput, project: str) -> tuple[int, str | None, str | None]:
    """Join an attempt's Cloud Storage output to the input by key; write the input rows it lacks (as
    they were read) to `action.missing_uri`. Returns how many, the file (None when there are none or it
    could not be written), and why it could not be (the operator may not write under the output prefix)."""
    if action.missing_uri is None or not is_gcs(action.output_location):
        return 0, None, None
    output = predictions_file(action.output_location)
    shard = Shard(1, action.inputs, output)
    totals = Totals()
    index = _index(gcs, bigquery, output, action.key_field, project)
    missing = (
        entry.input.raw or b""
        for entry in join(shard, _inputs(gcs, bigquery, shard, action.key_field, project), index, totals)
        if entry.row["outcome"] == "missing"
    )
    first = next(missing, None)
    if first is None:
        return 0, None, None
    lines = (line if line.endswith(b"\n") else line + b"\n" for line in chain([first], missing))
    try:
        _write_once(gcs, action.missing_uri, lines, source_tag([shard], action.key_field))
    except AdapterError as error:
        if error.retryable and error.code != FORBIDDEN:
            raise
        for _ in missing:  # still counted
            pass
        return totals.missing, None, error.message
    return totals.missing, action.missing_uri, None
