"""Batch prediction jobs: creation, the state machine, and the streamed processing of their rows.

A job goes PENDING -> RUNNING -> a terminal state at the configured pace. Processing runs in a
worker thread (the Google clients are synchronous): one streamed pass validates the input by the
import rules, a second runs the rows and writes them out, through a small shuffle buffer so rows
come out in a different order than they went in, as on Vertex. Input is JSONL in Cloud Storage or a
BigQuery table; output is `predictions.jsonl` in a new Cloud Storage directory, or a BigQuery table
(the named one, or a new `predictions_<timestamp>` in the named dataset). Rows that already hold a
successful response (a previous job's output, fed back to resume it) pass through untouched and
unbilled; rows that failed or never ran are run.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.cloud.bigquery import SchemaField

from . import bigquery as bq
from . import inference
from .errors import ApiError, status_envelope
from .faults import FaultPlan
from .filtering import compile_filter
from .importrules import MAX_FILE_BYTES, ImportValidator, ImportViolation
from .jobs import TERMINAL, Counts, Job, project_number, rfc3339, utcnow
from .storage import BucketMissing, GcsPath, Storage
from .validation import parse_create_body

DEFAULT_MODELS = frozenset(
    {
        "gemini-2.0-flash-001",
        "gemini-2.0-flash-lite-001",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-pro",
        "gemini-3-flash-preview",
        "gemini-3-pro-preview",
    }
)
OUTPUT_ONLY_KEYS = ("request", "response", "status", "processed_time")
SHUFFLE_BUFFER = 32


@dataclass
class Config:
    queue_seconds: float = 1.0
    min_run_seconds: float = 1.0
    rows_per_second: float = 0.0  # 0: as fast as the machine goes
    cache_threshold_tokens: int = 2048
    models: set[str] = field(default_factory=lambda: set(DEFAULT_MODELS))

    def update(self, values: dict[str, Any]) -> None:
        mapping = {
            "queueSeconds": "queue_seconds",
            "minRunSeconds": "min_run_seconds",
            "rowsPerSecond": "rows_per_second",
            "cacheThresholdTokens": "cache_threshold_tokens",
        }
        for key, value in values.items():
            if key == "models":
                self.models = set(value)
            elif key in mapping:
                setattr(self, mapping[key], type(getattr(self, mapping[key]))(value))
            else:
                raise ValueError(f"unknown config key {key!r}")

    def describe(self) -> dict[str, Any]:
        return {
            "queueSeconds": self.queue_seconds,
            "minRunSeconds": self.min_run_seconds,
            "rowsPerSecond": self.rows_per_second,
            "cacheThresholdTokens": self.cache_threshold_tokens,
            "models": sorted(self.models),
        }


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


class Engine:
    def __init__(
        self, storage: Storage | None = None, config: Config | None = None, bigquery: bq.BigQuery | None = None
    ) -> None:
        self._storage = storage
        self._bigquery = bigquery
        self.config = config or Config()
        self.jobs: dict[str, Job] = {}
        self.faults = FaultPlan()
        self.stats: Counter[tuple[str, int]] = Counter()
        self.cache = inference.ImplicitCache(self.config.cache_threshold_tokens)
        self._ids = itertools.count(int(time.time()) * 10**9 % 10**18 + 10**18)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            from .storage import make_client

            self._storage = Storage(make_client())
        return self._storage

    @property
    def bigquery(self) -> bq.BigQuery:
        if self._bigquery is None:
            self._bigquery = bq.BigQuery(bq.make_client())
        return self._bigquery

    # ------------------------------------------------------------ lifecycle

    async def reset(self) -> None:
        for job in self.jobs.values():
            job.cancel_requested.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.jobs.clear()
        self.faults.clear()
        self.stats.clear()
        self.cache = inference.ImplicitCache(self.config.cache_threshold_tokens)

    async def drain(self) -> None:
        """Wait until every job created so far has reached a terminal state."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.reset()

    def apply_config(self, values: dict[str, Any]) -> None:
        self.config.update(values)
        self.cache.threshold_tokens = self.config.cache_threshold_tokens

    # ------------------------------------------------------------ the REST methods

    def create(self, project: str, location: str, body: Any) -> Job:
        request = parse_create_body(body, self.config.models)
        now = utcnow()
        job = Job(
            id=str(next(self._ids)),
            project=project,
            location=location,
            display_name=request.display_name,
            model=request.model,
            model_id=request.model_id,
            input_config=request.input_config,
            output_config=request.output_config,
            labels=request.labels,
            create_time=now,
            update_time=now,
        )
        job.fault = self.faults.take_job_fault(request.display_name, job.labels)
        job.timeline.append({"state": job.state, "time": rfc3339(now)})
        self.jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, project: str, location: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.location != location or project not in (job.project, project_number(job.project)):
            raise ApiError(
                404,
                f"The BatchPredictionJob projects/{project}/locations/{location}/batchPredictionJobs/"
                f"{job_id} does not exist.",
            )
        return job

    def list(
        self, project: str, location: str, filter_text: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[Job], str | None]:
        predicate = compile_filter(filter_text)
        size = min(page_size or 100, 1000)
        jobs = sorted(
            (
                j
                for j in self.jobs.values()
                if j.location == location and project in (j.project, project_number(j.project))
            ),
            key=lambda j: int(j.id),
            reverse=True,
        )
        if page_token:
            if not page_token.isdigit():
                raise ApiError(400, "Invalid page token.")
            jobs = [j for j in jobs if int(j.id) < int(page_token)]
        matched: list[Job] = []
        for job in jobs:
            if predicate(job.to_rest()):
                if len(matched) == size:
                    return matched, matched[-1].id
                matched.append(job)
        return matched, None

    def cancel(self, project: str, location: str, job_id: str) -> None:
        job = self.get(project, location, job_id)
        if job.state in TERMINAL:
            raise ApiError(
                400, f"Cannot cancel BatchPredictionJob {job.name} in state {job.state}.", "FAILED_PRECONDITION"
            )
        job.cancel_requested.set()
        if job.state == "JOB_STATE_RUNNING":
            job.move("JOB_STATE_CANCELLING")

    def delete(self, project: str, location: str, job_id: str) -> dict[str, Any]:
        job = self.get(project, location, job_id)
        if job.state not in TERMINAL:
            raise ApiError(
                400,
                f"BatchPredictionJob {job.name} is in state {job.state} and cannot be deleted; cancel it first.",
                "FAILED_PRECONDITION",
            )
        del self.jobs[job_id]
        now = rfc3339(utcnow())
        parent = job.name.rsplit("/batchPredictionJobs/", 1)[0]
        return {
            "name": f"{parent}/operations/{next(self._ids)}",
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata",
                "genericMetadata": {"createTime": now, "updateTime": now},
            },
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }

    # ------------------------------------------------------------ the state machine

    async def _wait_or_cancel(self, job: Job, seconds: float) -> bool:
        """Wait up to `seconds`; True when a cancel came in meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if job.cancel_requested.is_set():
                return True
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        return job.cancel_requested.is_set()

    async def _run(self, job: Job) -> None:
        cancelled = await self._wait_or_cancel(job, self.config.queue_seconds)
        if cancelled:
            job.error = {"code": 1, "message": "CANCELED"}
            job.move("JOB_STATE_CANCELLED")
            return
        if job.fault and job.fault.outcome == "EXPIRED":
            job.move("JOB_STATE_EXPIRED")
            return
        started = time.monotonic()
        job.move("JOB_STATE_RUNNING")
        start = job.start_time or utcnow()
        if job.writes_bigquery:
            target = bq.BqPath.parse(job.output_prefix)
            table = target.table or f"predictions_{start.strftime('%Y_%m_%dT%H_%M_%S_%fZ')}"
            job.output_info = {"bigqueryOutputDataset": target.dataset_uri, "bigqueryOutputTable": table}
        else:
            stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            job.output_info = {"gcsOutputDirectory": f"{job.output_prefix.rstrip('/')}/prediction-model-{stamp}"}
        try:
            outcome = await asyncio.to_thread(self._process, job)
        except Exception as error:  # an emulator bug must not leave a job RUNNING forever
            outcome = Outcome("JOB_STATE_FAILED", {"code": 13, "message": f"System error: {error!r}"})
        remaining = self.config.min_run_seconds - (time.monotonic() - started)
        if remaining > 0 and outcome.state == "JOB_STATE_SUCCEEDED" and await self._wait_or_cancel(job, remaining):
            outcome = Outcome("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
        job.error = outcome.error
        job.move(outcome.state)

    # ------------------------------------------------------------ processing (worker thread)

    def _process(self, job: Job) -> Outcome:
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
        target = bq.BqPath.parse(job.output_prefix)
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
        interval = 1.0 / self.config.rows_per_second if self.config.rows_per_second else 0.0
        next_row_at = time.monotonic()
        with self._writer(job, source) as out:

            def emit(row: dict[str, Any]) -> None:
                buffer.append(orjson.dumps(row))
                if len(buffer) >= SHUFFLE_BUFFER:
                    out.write(buffer.pop(rng.randrange(len(buffer))) + b"\n")

            for index, row in enumerate(source.rows()):
                if stopped_by is None:
                    if job.cancel_requested.is_set():
                        stopped_by = "cancel"
                    elif stop_at is not None and index >= stop_at:
                        stopped_by = "fault"
                if _carried(row):
                    counts.successful += 1
                    counts.carried += 1
                    emit(row)
                elif stopped_by is not None:
                    counts.incomplete += 1
                    emit({key: value for key, value in row.items() if key not in ("response", "status")})
                else:
                    if interval:
                        next_row_at += interval
                        delay = next_row_at - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)  # the configured pace of the emulated service
                    emit(self._infer(job, row, counts))
            rng.shuffle(buffer)
            for item in buffer:
                out.write(item + b"\n")
        return self._outcome(job, stopped_by, source.total)

    def _infer(self, job: Job, row: dict[str, Any], counts: Counts) -> dict[str, Any]:
        request = row["request"]
        encoded = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(encoded).hexdigest()[:24]
        code = self.faults.row_failure(job.id, key, encoded.decode())
        message = _ROW_FAULT_MESSAGES.get(code or 0, "")
        if code is None and (problem := request_problem(request)):
            code, message = 400, problem
        result: dict[str, Any] = {k: v for k, v in row.items() if k not in OUTPUT_ONLY_KEYS}
        result["status"] = ""
        result["processed_time"] = utcnow().isoformat(timespec="milliseconds")
        result["request"] = request
        counts.processed += 1
        if code is not None:
            counts.failed += 1
            result["status"] = _row_status(code, message)
            result["response"] = {}
        else:
            counts.successful += 1
            result["response"] = inference.generate(job.model_id, job.project, request, self.cache)
        self.stats["rows", 200 if code is None else code] += 1
        return result

    @staticmethod
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
