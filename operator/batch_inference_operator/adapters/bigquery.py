"""The BigQuery adapter: table metadata for preflight, and the usage query over an output table.

google-cloud-bigquery finds credentials itself: Application Default Credentials (Workload Identity
on GKE), or anonymous ones against a local stand-in named by `BIGQUERY_EMULATOR_HOST`. Queries run
and are billed in the job's project. The client is synchronous, so callers use a worker thread.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from ..core.keys import MAX_DUPLICATES_REPORTED
from ..core.preflight_bigquery import Column
from ..core.uris import BigQueryUri
from ..core.usage import OutputScan, from_totals, row_errors_query, usage_query
from .errors import AdapterError

# The client's default retries a 5xx for ten minutes; the reconcile loop has its own backoff.
RETRY = bigquery.DEFAULT_RETRY.with_deadline(30)
TIMEOUT = 60.0


@dataclass(frozen=True)
class TableInfo:
    location: str
    columns: list[Column]
    rows: int | None  # None for a view: BigQuery does not count its rows
    bytes: int


class BigQuery:
    def __init__(self) -> None:
        self._clients: dict[str, bigquery.Client] = {}

    def client(self, project: str) -> bigquery.Client:
        if project not in self._clients:
            anonymous = AnonymousCredentials() if os.environ.get("BIGQUERY_EMULATOR_HOST") else None
            self._clients[project] = bigquery.Client(project=project, credentials=anonymous)
        return self._clients[project]

    def _call(self, what: str, uri: str, call: Any, missing: str = "InputNotFound") -> Any:
        """Run a client call; a missing table or dataset fails the resource with reason `missing`."""
        try:
            return call()
        except gexc.NotFound:
            raise AdapterError(f"{what} {uri} does not exist", retryable=False, reason=missing) from None
        except gexc.Forbidden as error:
            raise AdapterError(f"no permission to read {what} {uri}: {error.message}", retryable=True) from None
        except gexc.BadRequest as error:
            raise AdapterError(
                f"BigQuery refused a request about {uri}: {error.message}", retryable=False, reason=missing
            ) from None
        except gexc.GoogleAPIError as error:
            raise AdapterError(f"reading {what} {uri} failed: {error}", retryable=True) from None

    def dataset_location(self, uri: str, project: str, missing: str = "InputNotFound") -> str:
        dataset = BigQueryUri.parse(uri)
        found = self._call(
            "BigQuery dataset",
            dataset.dataset_uri,
            lambda: self.client(project).get_dataset(dataset.dataset_id, retry=RETRY, timeout=TIMEOUT),
            missing,
        )
        return found.location or "US"

    def table(self, uri: str, project: str) -> TableInfo:
        table = self._call(
            "BigQuery table",
            uri,
            lambda: self.client(project).get_table(BigQueryUri.parse(uri).table_id, retry=RETRY, timeout=TIMEOUT),
        )
        rows = None
        if table.table_type in (None, "TABLE"):
            # numRows leaves out rows still in the streaming buffer (inserted moments ago).
            buffered = table.streaming_buffer.estimated_rows if table.streaming_buffer else 0
            rows = (table.num_rows or 0) + (buffered or 0)
        return TableInfo(
            location=self.dataset_location(uri, project),
            columns=[Column(f.name, f.field_type, f.mode or "NULLABLE") for f in table.schema],
            rows=rows,
            bytes=table.num_bytes or 0,
        )

    def _query(self, uri: str, project: str, location: str, query: str) -> list[Any]:
        return self._call(
            "BigQuery table",
            uri,
            lambda: list(
                self.client(project).query_and_wait(
                    query, location=location, api_timeout=TIMEOUT, wait_timeout=TIMEOUT, retry=RETRY, job_retry=None
                )
            ),
        )

    def scan(self, uri: str, project: str, location: str) -> OutputScan:
        """Usage and row outcomes of an output table, summed by one query where the rows are, and a few
        failed rows' statuses by a second."""
        table_id = BigQueryUri.parse(uri).table_id
        totals = self._query(uri, project, location, usage_query(table_id))
        failed = self._query(uri, project, location, row_errors_query(table_id))
        return from_totals(dict(totals[0]), [row["status"] for row in failed])

    def rows(self, uri: str, project: str, columns: Iterable[str]) -> Iterator[dict[str, Any]]:
        """A table's rows, these columns of them (those it has), page by page; a JSON column as its value."""
        client = self.client(project)
        table = self._call("BigQuery table", uri, lambda: client.get_table(BigQueryUri.parse(uri).table_id))
        wanted = [f for f in table.schema if f.name in set(columns)]
        pages = self._call("BigQuery table", uri, lambda: client.list_rows(table, selected_fields=wanted))
        try:
            for row in pages:
                yield dict(row.items())
        except gexc.GoogleAPIError as error:
            raise AdapterError(f"reading BigQuery table {uri} failed: {error}", retryable=True) from None

    def load_rows(self, uri: str, project: str, location: str, rows: Iterable[dict[str, Any]], schema: Any) -> None:
        """Replace a table's content with these rows by one load job. The rows are spooled to a temporary
        file as NDJSON (memory stays flat) and uploaded resumably, as BigQuery's own clients do for files."""
        client = self.client(project)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            schema=[bigquery.SchemaField(name, kind) for name, kind in schema],
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        table_id = BigQueryUri.parse(uri).table_id
        with tempfile.TemporaryFile() as spool:
            for row in rows:
                spool.write(orjson.dumps(row) + b"\n")

            def load() -> None:
                try:
                    job = client.load_table_from_file(
                        spool, table_id, job_config=config, location=location, rewind=True
                    )
                    job.result(retry=RETRY, timeout=TIMEOUT)
                except gexc.Forbidden as error:  # waiting does not grant it: said once, not retried
                    raise AdapterError(
                        f"no permission to write BigQuery table {uri}: {error.message}", retryable=False, code=403
                    ) from None

            self._call("BigQuery table", uri, load, missing="OutputNotFound")

    def duplicate_keys(self, uri: str, key: str, project: str, location: str) -> list[str]:
        """Keys held by more than one row (`key`: a column, or an expression over the row), a few of them."""
        table_id = BigQueryUri.parse(uri).table_id
        query = (
            f"SELECT CAST({key} AS STRING) AS k, COUNT(*) AS n FROM `{table_id}` "
            f"GROUP BY k HAVING COUNT(*) > 1 ORDER BY k LIMIT {MAX_DUPLICATES_REPORTED}"
        )
        found = self._query(uri, project, location, query)
        keyed = key.startswith("`")
        hint = (
            "each row's key must be unique"
            if keyed
            else "a table cut into shards needs a column of unique keys, named by spec.input.keyField: rows "
            "with the same request could land in two shards, or in none"
        )
        return [
            f"{uri}: {row['n']} rows hold the same {'key' if keyed else 'request'} {str(row['k'])[:200]!r}: "
            f"{hint} [duplicate-key]"
            for row in found
        ]

    def make_shard_table(
        self, source: str, target: str, first: int, last: int, order: str, project: str, location: str
    ) -> bool:
        """Rows `first`..`last` of `source` in `order` as a new table, by one query that fails if the table
        exists: then the existing one is checked (its row count), not remade. True: made now."""
        source_id, target_id = BigQueryUri.parse(source).table_id, BigQueryUri.parse(target).table_id
        query = (
            f"CREATE TABLE `{target_id}` AS SELECT * EXCEPT (bij_row) FROM (SELECT *, ROW_NUMBER() OVER "
            f"(ORDER BY {order}) AS bij_row FROM `{source_id}`) WHERE bij_row BETWEEN {first} AND {last}"
        )

        def create() -> bool:
            try:
                self.client(project).query_and_wait(
                    query, location=location, api_timeout=TIMEOUT, wait_timeout=TIMEOUT, retry=RETRY, job_retry=None
                )
            except gexc.Conflict:
                return False
            return True

        if self._call("BigQuery table", source, create):
            return True
        rows = self.table(target, project).rows
        if rows != last - first + 1:
            raise AdapterError(
                f"the shard table {target} exists but holds {rows} rows, not the {last - first + 1} of this split: "
                "another job or an earlier input made it. Drop it, or use another output dataset",
                retryable=False,
                reason="ShardMismatch",
            )
        return False
