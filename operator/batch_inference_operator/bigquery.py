"""The BigQuery adapter: table metadata for preflight, and the usage query over an output table.

google-cloud-bigquery finds credentials itself: Application Default Credentials (Workload Identity
on GKE), or anonymous ones against a local stand-in named by `BIGQUERY_EMULATOR_HOST`. Queries run
and are billed in the job's project. The client is synchronous, so callers use a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from . import usage as usage_report
from .api import RowCounts, Usage
from .preflight import Column
from .storage import StorageError

# The client's default retries a 5xx for ten minutes; the reconcile loop has its own backoff.
RETRY = bigquery.DEFAULT_RETRY.with_deadline(30)
TIMEOUT = 60.0


@dataclass(frozen=True)
class TableInfo:
    location: str
    columns: list[Column]
    rows: int | None  # None for a view: BigQuery does not count its rows
    bytes: int


def _table_id(uri: str) -> str:
    return uri.removeprefix("bq://")


def _dataset_id(uri: str) -> str:
    return ".".join(_table_id(uri).split(".")[:2])


class BigQuery:
    def __init__(self) -> None:
        self._clients: dict[str, bigquery.Client] = {}

    def client(self, project: str) -> bigquery.Client:
        if project not in self._clients:
            anonymous = AnonymousCredentials() if os.environ.get("BIGQUERY_EMULATOR_HOST") else None
            self._clients[project] = bigquery.Client(project=project, credentials=anonymous)
        return self._clients[project]

    def _call(self, what: str, uri: str, call: Any) -> Any:
        try:
            return call()
        except gexc.NotFound:
            raise StorageError(f"{what} {uri} does not exist", retryable=False) from None
        except gexc.Forbidden as error:
            raise StorageError(f"no permission to read {what} {uri}: {error.message}", retryable=True) from None
        except gexc.BadRequest as error:
            raise StorageError(f"BigQuery refused a request about {uri}: {error.message}", retryable=False) from None
        except gexc.GoogleAPIError as error:
            raise StorageError(f"reading {what} {uri} failed: {error}", retryable=True) from None

    def dataset_location(self, uri: str, project: str) -> str:
        dataset_id = _dataset_id(uri)
        dataset = self._call(
            "BigQuery dataset",
            f"bq://{dataset_id}",
            lambda: self.client(project).get_dataset(dataset_id, retry=RETRY, timeout=TIMEOUT),
        )
        return dataset.location or "US"

    def table(self, uri: str, project: str) -> TableInfo:
        table = self._call(
            "BigQuery table", uri, lambda: self.client(project).get_table(_table_id(uri), retry=RETRY, timeout=TIMEOUT)
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

    def scan(self, uri: str, project: str, location: str) -> tuple[Usage, RowCounts]:
        """Usage and row outcomes of an output table, summed by one query where the rows are."""
        query = usage_report.usage_query(_table_id(uri))
        rows = self._call(
            "BigQuery table",
            uri,
            lambda: list(
                self.client(project).query_and_wait(
                    query, location=location, api_timeout=TIMEOUT, wait_timeout=TIMEOUT, retry=RETRY, job_retry=None
                )
            ),
        )
        return usage_report.from_totals(dict(rows[0]))
