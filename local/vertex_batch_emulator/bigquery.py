"""BigQuery access for the emulator, through google-cloud-bigquery: input tables in, output tables out.

The endpoint is `BIGQUERY_EMULATOR_HOST` (or an explicit one); credentials are anonymous, as local
BigQuery stand-ins expect. Rows are read a page at a time and written through one NDJSON load job
(waiting in a temporary file), so memory does not grow with the table. Vertex's rules for tables
(docs, "batch prediction from BigQuery") are plain functions here: a `request` JSON column, reserved
`response` and `status`, passthrough columns of allowed types, and datasets in the job's region.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

PAGE_ROWS = 1000
RETRY = bigquery.DEFAULT_RETRY.with_deadline(60)
RESERVED = ("response", "status")
OUTPUT_COLUMNS = ("request", "response", "status", "processed_time")
# Passthrough columns may have any type but these (and no REPEATED mode).
UNSUPPORTED_TYPES = frozenset({"RECORD", "STRUCT", "RANGE", "DATETIME", "GEOGRAPHY"})
URI = re.compile(r"^bq://([a-z][a-z0-9-]{4,28}[a-z0-9])\.([A-Za-z0-9_]{1,1024})(?:\.([A-Za-z0-9_][A-Za-z0-9_-]*))?$")
PROJECT_URI = re.compile(r"^bq://([a-z][a-z0-9-]{4,28}[a-z0-9])$")


def project_only(uri: str) -> str | None:
    """The project of a `bq://project` destination (Vertex then creates the dataset), else None."""
    match = PROJECT_URI.match(uri)
    return match.group(1) if match else None


class Missing(Exception):
    """A dataset or table that does not exist."""


@dataclass(frozen=True)
class BqPath:
    project: str
    dataset: str
    table: str | None = None

    @classmethod
    def parse(cls, uri: str) -> BqPath:
        match = URI.match(uri)
        if not match:
            raise ValueError(f"{uri!r} is not a BigQuery URI (bq://project.dataset or bq://project.dataset.table)")
        return cls(*match.groups())

    @property
    def dataset_uri(self) -> str:
        return f"bq://{self.project}.{self.dataset}"

    @property
    def table_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    def with_table(self, table: str) -> BqPath:
        return BqPath(self.project, self.dataset, table)

    def __str__(self) -> str:
        return f"{self.dataset_uri}.{self.table}" if self.table else self.dataset_uri


def make_client(endpoint: str | None = None) -> bigquery.Client:
    endpoint = endpoint or os.environ.get("BIGQUERY_EMULATOR_HOST")
    if not endpoint:
        raise RuntimeError("set BIGQUERY_EMULATOR_HOST (or --bigquery-endpoint) to the BigQuery stand-in's URL")
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    return bigquery.Client(
        project="vertex-batch-emulator", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


def region_problem(what: str, uri: str, dataset_location: str, job_location: str) -> str | None:
    """Vertex reads and writes BigQuery only in the job's own region; multi-regions are not supported."""
    if dataset_location.lower() == job_location.lower():
        return None
    multi = " (a multi-region, which batch prediction does not support)" if "-" not in dataset_location else ""
    return (
        f"the {what} {uri} is in {dataset_location}{multi}, but the job runs in {job_location}: "
        "BigQuery datasets must be in the job's region"
    )


def schema_problems(uri: str, schema: list[bigquery.SchemaField]) -> list[str]:
    """Vertex's rules for an input table. A previous job's output (request, response JSON, status STRING)
    is valid input too: that is how a job is resumed."""
    columns = {field.name.lower(): field for field in schema}
    problems = []
    request = columns.get("request")
    if request is None:
        problems.append(
            f"{uri} has no `request` column: each row's GenerateContentRequest must be in a JSON column named request"
        )
    elif request.field_type.upper() not in ("JSON", "STRING") or request.mode == "REPEATED":
        problems.append(f"{uri}: column `request` is {request.field_type}; it must be JSON (or a STRING holding JSON)")
    resuming = all(name in columns for name in RESERVED) and (
        columns["response"].field_type.upper() == "JSON" and columns["status"].field_type.upper() == "STRING"
    )
    if not resuming:
        for name in RESERVED:
            if name in columns:
                problems.append(
                    f"{uri}: column `{columns[name].name}` has a reserved name (Vertex writes response and status "
                    "into the output); rename it"
                )
    for field in schema:
        if field.name.lower() in OUTPUT_COLUMNS:
            continue
        kind = field.field_type.upper()
        if field.mode == "REPEATED" or kind in UNSUPPORTED_TYPES:
            shown = f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind
            problems.append(
                f"{uri}: column `{field.name}` is {shown}; passthrough columns may be any type but ARRAY, STRUCT, "
                "RANGE, DATETIME and GEOGRAPHY"
            )
    return problems


def output_schema(passthrough: list[bigquery.SchemaField]) -> list[bigquery.SchemaField]:
    return [
        *(field for field in passthrough if field.name.lower() not in OUTPUT_COLUMNS),
        bigquery.SchemaField("request", "JSON"),
        bigquery.SchemaField("response", "JSON"),
        bigquery.SchemaField("status", "STRING"),
        bigquery.SchemaField("processed_time", "TIMESTAMP"),
    ]


def _plain(value: Any) -> Any:
    """A typed BigQuery value as NDJSON can carry it back into a load."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


class BigQuery:
    def __init__(self, client: bigquery.Client) -> None:
        self.client = client

    def dataset_location(self, path: BqPath) -> str:
        try:
            dataset = self.client.get_dataset(f"{path.project}.{path.dataset}", retry=RETRY)
        except gexc.NotFound:
            raise Missing(f"BigQuery dataset {path.dataset_uri} does not exist") from None
        return dataset.location or "US"

    def create_dataset(self, path: BqPath, location: str) -> None:
        """The dataset Vertex creates for a `bq://project` destination, in the job's region."""
        entry = bigquery.Dataset(f"{path.project}.{path.dataset}")
        entry.location = location
        self.client.create_dataset(entry, exists_ok=True, retry=RETRY)

    def schema(self, path: BqPath) -> list[bigquery.SchemaField]:
        try:
            return list(self.client.get_table(path.table_id, retry=RETRY).schema)
        except gexc.NotFound:
            raise Missing(f"BigQuery table {path} does not exist") from None

    def rows(self, path: BqPath, schema: list[bigquery.SchemaField]) -> Iterator[dict[str, Any]]:
        """Every row as a plain dict (JSON columns as objects), a page at a time; `schema` is the table's."""
        request_is_text = any(f.name == "request" and f.field_type.upper() == "STRING" for f in schema)
        for row in self.client.list_rows(path.table_id, page_size=PAGE_ROWS, retry=RETRY):
            plain = {key: _plain(value) for key, value in row.items()}
            if request_is_text and isinstance(plain.get("request"), str):
                plain["request"] = _parse_text_request(plain["request"])
            yield plain

    def writer(self, path: BqPath, schema: list[bigquery.SchemaField]) -> TableWriter:
        return TableWriter(self.client, path, schema)


def _parse_text_request(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # left as a string: the import rules reject it with the row number


class TableWriter:
    """NDJSON lines in, one load job out when closed: the table is created if missing and appended to."""

    def __init__(self, client: bigquery.Client, path: BqPath, schema: list[bigquery.SchemaField]) -> None:
        self.client = client
        self.path = path
        self.schema = schema
        # A temporary file, not memory: outputs may be large. (The client refuses SpooledTemporaryFile's mode.)
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> TableWriter:
        return self

    def write(self, line: bytes) -> None:
        self._spool.write(line)

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            if kind is None:
                self._load()
        finally:
            self._spool.close()

    def _load(self) -> None:
        table = bigquery.Table(self.path.table_id, schema=self.schema)
        self.client.create_table(table, exists_ok=True, retry=RETRY)
        self._spool.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            schema=self.schema,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        # No size: a resumable upload, which local stand-ins serve (multipart is not always).
        job = self.client.load_table_from_file(self._spool, self.path.table_id, job_config=config, rewind=True)
        job.result(retry=RETRY, timeout=600)
