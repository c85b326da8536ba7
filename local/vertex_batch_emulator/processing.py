"""Running a job's rows: read the input, run each request, write the output, decide the outcome.

This runs in a worker thread (the Google clients are synchronous). One streamed pass validates the
input by the import rules, a second runs the rows and writes them out, through a small shuffle
buffer so rows come out in a different order than they went in, as on Vertex. Input is JSONL in
Cloud Storage or a BigQuery table; output is `predictions.jsonl` in a new Cloud Storage directory,
or a BigQuery table. Rows that already hold a successful response (a previous job's output, fed
back to resume it) pass through untouched and unbilled; rows that failed or never ran are run.
Between rows the worker waits at the job's `Gate` while the job is paused or stalled, so its counts
stay where they are. Nothing here moves a job between states: it returns an `Outcome`, and the
lifecycle applies it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from google.cloud.bigquery import SchemaField

from . import bigquery as bq
from . import inference
from .errors import status_envelope
from .faults import FaultPlan
from .importrules import MAX_FILE_BYTES, ImportValidator, ImportViolation
from .jobs import Counts, Job, utcnow
from .reserialize import echoed
from .storage import BucketMissing, GcsPath, Storage

OUTPUT_ONLY_KEYS = ("request", "response", "status", "processed_time")
SHUFFLE_BUFFER = 32


@dataclass
class Outcome:
    state: str
    error: dict[str, Any] | None = None


class Refused(Exception):
    """The input or output breaks a rule that fails the job before any row runs (error code 3)."""


@dataclass
class Source:
    """A validated input: its rows (read again from the start on each call), how many, and the
    columns other than the request that an output table must carry through."""

    rows: Callable[[], Iterator[dict[str, Any]]]
    total: int
    passthrough: list[SchemaField] = field(default_factory=list)


def _row_status(code: int, message: str) -> str:
    """The `status` text of a failed output row, in the shapes Vertex writes."""
    error = json.dumps(status_envelope(code, message))
    prefix = {400: "Bad Request", 429: "Too Many Requests", 503: "Service Unavailable"}.get(code)
    if prefix is None:
        return f"Internal error occurred. Failed to get generateContentResponse: {error}"
    return f"{prefix}: {error}"


_ROW_FAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    429: "Resource exhausted. Please try again later.",
    500: "Internal error encountered.",
    503: "The model is overloaded. Please try again later.",
}


def request_problem(request: dict[str, Any]) -> str | None:
    """What a real model call would refuse with 400, for the common mistakes."""
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for index, content in enumerate(contents):
        if not isinstance(content, dict):
            return f"* GenerateContentRequest.contents[{index}]: must be an object"
        if content.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not content.get("parts"):
            return f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty."
    return None


def _carried(row: dict[str, Any]) -> bool:
    """A previous job's successful row: a non-empty response and no failure status."""
    return bool(row.get("response")) and not row.get("status")


class Pacing(Protocol):
    @property
    def rows_per_second(self) -> float: ...  # 0: as fast as the machine goes


class Services(Protocol):
    """What running rows takes from the engine. Read at the moment of use, never copied: the engine
    makes its clients on first use, and replaces its cache and config values on reset and reconfiguration."""

    @property
    def storage(self) -> Storage: ...

    @property
    def bigquery(self) -> bq.BigQuery: ...

    @property
    def config(self) -> Pacing: ...

    @property
    def faults(self) -> FaultPlan: ...

    @property
    def stats(self) -> Counter[tuple[str, int]]: ...

    @property
    def cache(self) -> inference.ImplicitCache: ...


class JobProcessor:
    """Processes jobs with the engine's clients, fault plan, statistics and implicit cache."""

    def __init__(self, services: Services) -> None:
        self._services = services

    @property
    def storage(self) -> Storage:
        return self._services.storage

    @property
    def bigquery(self) -> bq.BigQuery:
        return self._services.bigquery

    def process(self, job: Job) -> Outcome:
        try:
            self._check_output(job)
            source = self._bigquery_source(job) if job.reads_bigquery else self._gcs_source(job)
        except BucketMissing as missing:
            return Outcome(
                "JOB_STATE_FAILED",
                {
                    "code": 9,
                    "message": f"Failed to get GCS bucket location for "
                    f"{missing.bucket}. Please make sure the bucket exists and the "
                    "Vertex AI service agent can access it.",
                },
            )
        except bq.Missing as missing:
            return Outcome(
                "JOB_STATE_FAILED",
                {"code": 9, "message": f"{missing} or the Vertex AI service agent cannot access it."},
            )
        except (ImportViolation, Refused) as violation:
            return _import_failure(str(violation))
        if source.total == 0:
            return _import_failure("The input holds no requests.")
        job.counts = Counts()
        stop_at = math.floor(source.total * job.fault.after_fraction) if job.fault else None
        return self._run_rows(job, source, stop_at)

    def _check_output(self, job: Job) -> None:
        if not job.writes_bigquery:
            self.storage.require_bucket(GcsPath.parse(job.output_prefix).bucket)
            return
        target = bq.BqPath.parse((job.output_info or {})["bigqueryOutputDataset"])
        if bq.project_only(job.output_prefix):
            self.bigquery.create_dataset(target, job.location)
            return
        problem = bq.region_problem(
            "output dataset", target.dataset_uri, self.bigquery.dataset_location(target), job.location
        )
        if problem:
            raise Refused(problem)

    def _gcs_source(self, job: Job) -> Source:
        storage = self.storage
        files: list[str] = []
        for uri in job.input_uris:
            matched = storage.expand(uri)
            if not matched:
                raise Refused(f"No files matched {uri}.")
            for path, size in matched:
                if size > MAX_FILE_BYTES:
                    raise Refused(f"{path} is larger than the 1 GB limit.")
                files.append(path)
        validator = ImportValidator()
        for path in files:
            for number, line in enumerate(storage.lines(path), 1):
                validator.check(path, number, line)

        def rows() -> Iterator[dict[str, Any]]:
            for path in files:
                for line in storage.lines(path):
                    if line.strip():
                        yield orjson.loads(line)

        return Source(rows, validator.requests, _columns_of(validator) if job.writes_bigquery else [])

    def _bigquery_source(self, job: Job) -> Source:
        table_uri = job.input_uris[0]
        path = bq.BqPath.parse(table_uri)
        problem = bq.region_problem("input table", table_uri, self.bigquery.dataset_location(path), job.location)
        if problem:
            raise Refused(problem)
        schema = self.bigquery.schema(path)
        problems = bq.schema_problems(table_uri, schema)
        if problems:
            raise Refused("; ".join(problems) + ".")
        validator = ImportValidator()
        for number, row in enumerate(self.bigquery.rows(path, schema), 1):
            validator.check(table_uri, number, orjson.dumps({"request": row.get("request")}))
        return Source(lambda: self.bigquery.rows(path, schema), validator.requests, schema)

    def _writer(self, job: Job, source: Source) -> Any:
        info = job.output_info or {}
        if job.writes_bigquery:
            target = bq.BqPath.parse(info["bigqueryOutputDataset"]).with_table(info["bigqueryOutputTable"])
            return self.bigquery.writer(target, bq.output_schema(source.passthrough))
        return self.storage.writer(f"{info['gcsOutputDirectory']}/predictions.jsonl")

    def _run_rows(self, job: Job, source: Source, stop_at: int | None) -> Outcome:
        counts = job.counts
        assert counts is not None
        rng = random.Random(job.id)
        buffer: list[bytes] = []
        stopped_by: str | None = None
        pace = self._services.config.rows_per_second
        interval = 1.0 / pace if pace else 0.0
        next_row_at = time.monotonic()
        with self._writer(job, source) as out:

            def emit(row: dict[str, Any]) -> None:
                buffer.append(orjson.dumps(row))
                if len(buffer) >= SHUFFLE_BUFFER:
                    out.write(buffer.pop(rng.randrange(len(buffer))) + b"\n")

            for index, row in enumerate(source.rows()):
                if stopped_by is None:
                    if interval and not _carried(row) and (stop_at is None or index < stop_at):
                        next_row_at += interval
                        delay = next_row_at - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)  # the configured pace of the emulated service
                    if job.gate.wait_open():  # paused or stalled: no row moves until it is let go
                        next_row_at = time.monotonic()
                    if job.gate.cancelled:
                        stopped_by = "cancel"
                    elif stop_at is not None and index >= stop_at:
                        stopped_by = "fault"
                if _carried(row):
                    counts.successful += 1
                    counts.carried += 1
                    emit(row)
                elif stopped_by is not None:
                    counts.incomplete += 1
                    kept = {key: value for key, value in row.items() if key not in ("response", "status")}
                    emit(kept | {"request": echoed(row["request"])})
                elif (result := self._infer(job, row, counts)) is not None:
                    emit(result)
            rng.shuffle(buffer)
            for item in buffer:
                out.write(item + b"\n")
        return _outcome(job, stopped_by, source.total)

    def _infer(self, job: Job, row: dict[str, Any], counts: Counts) -> dict[str, Any] | None:
        """The output row of one request; None when a `drop` fault loses it (counted as succeeded)."""
        request = row["request"]
        # Keyed by the echoed form, so a request fed back by a resume (already echoed) is the same request.
        encoded = orjson.dumps(echoed(request), option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(encoded).hexdigest()[:24]
        if self._services.faults.row_dropped(job.id, key, encoded.decode()):
            counts.processed += 1
            counts.successful += 1
            return None
        code = self._services.faults.row_failure(job.id, key, encoded.decode())
        message = _ROW_FAULT_MESSAGES.get(code or 0, "")
        if code is None and (problem := request_problem(request)):
            code, message = 400, problem
        result: dict[str, Any] = {k: v for k, v in row.items() if k not in OUTPUT_ONLY_KEYS}
        result["status"] = ""
        result["processed_time"] = utcnow().isoformat(timespec="milliseconds")
        result["request"] = echoed(request)
        counts.processed += 1
        if code is not None:
            counts.failed += 1
            result["status"] = _row_status(code, message)
            result["response"] = {}
        else:
            counts.successful += 1
            result["response"] = inference.generate(job.model_id, job.project, request, self._services.cache)
        self._services.stats["rows", 200 if code is None else code] += 1
        return result


def _outcome(job: Job, stopped_by: str | None, total: int) -> Outcome:
    done = job.counts.successful + job.counts.failed if job.counts else 0
    if stopped_by == "cancel":
        return Outcome("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
    fault = job.fault
    if fault is not None and fault.outcome != "EXPIRED":  # afterFraction 1.0 stops after the last row
        if fault.outcome == "PARTIALLY_SUCCEEDED":
            return Outcome("JOB_STATE_PARTIALLY_SUCCEEDED")
        if fault.outcome == "CANCELLED":
            return Outcome(
                "JOB_STATE_CANCELLED",
                {
                    "code": fault.code or 1,
                    "message": fault.message or "The job was cancelled because it ran longer than 24 hours.",
                },
            )
        return Outcome(
            "JOB_STATE_FAILED",
            {
                "code": fault.code or 13,
                "message": fault.message or f"System error: the job stopped after {done} of {total} requests.",
            },
        )
    return Outcome("JOB_STATE_SUCCEEDED")


def _columns_of(validator: ImportValidator) -> list[SchemaField]:
    """Output columns for a JSONL input's extra top-level keys, typed as a BigQuery load would infer them."""
    kinds = {"string": "STRING", "boolean": "BOOL", "object": "JSON", "array": "JSON"}
    columns = []
    for key in validator.columns:
        if key in bq.OUTPUT_COLUMNS:
            continue
        kind = validator.types.get(key, ("string", "", 0))[0]
        if kind == "number":
            columns.append(SchemaField(key, "FLOAT64" if key in validator.floats else "INT64"))
        else:
            columns.append(SchemaField(key, kinds.get(kind, "STRING")))
    return columns


def _import_failure(detail: str) -> Outcome:
    return Outcome(
        "JOB_STATE_FAILED",
        {
            "code": 3,
            "message": f"Failed to import data. {detail} Please check the "
            "'Prepare input' section of the batch prediction documentation.",
        },
    )
