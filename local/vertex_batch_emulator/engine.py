"""Batch prediction jobs: the registry and the REST methods on them.

The engine holds the jobs, the fault plan, the statistics and the implicit cache, and answers the
REST methods (create, get, list, cancel, delete) and the control API's calls on jobs. Each job's
way through its states (queue, pending, running, cancelling, pause, update, stall) is the
`lifecycle`'s; its rows are run by `processing`. Create bodies arrive checked, from `validation`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, deque
from typing import Any

from . import bigquery as bq
from . import catalogue, inference
from .config import Config
from .errors import ApiError
from .faults import FaultPlan
from .filtering import compile_filter
from .jobs import TERMINAL, Job, project_number, rfc3339, utcnow
from .lifecycle import Lifecycle
from .listing import JobIndex
from .processing import JobProcessor
from .storage import Storage
from .validation import parse_create_body


class Engine:
    def __init__(
        self, storage: Storage | None = None, config: Config | None = None, bigquery: bq.BigQuery | None = None
    ) -> None:
        self._storage = storage
        self._bigquery = bigquery
        self.config = config or Config()
        self.jobs: dict[str, Job] = {}
        self.index = JobIndex()
        self.faults = FaultPlan()
        self.stats: Counter[tuple[str, int]] = Counter()
        self.cache = inference.ImplicitCache(self.config.cache_threshold_tokens)
        self._ids = itertools.count(int(time.time()) * 10**9 % 10**18 + 10**18)
        self.lifecycle = Lifecycle(lambda: self.config, JobProcessor(self))
        self._holds_released = asyncio.Event()
        self.operations: dict[tuple[str, str], dict[str, Any]] = {}  # (location, id) -> a delete's Operation
        self.exchanges: deque[dict[str, Any]] = deque()

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

    # ------------------------------------------------------------ held requests, reset, config

    async def hold(self, seconds: float) -> bool:
        """Hold a received request for `seconds`; False when a reset or shutdown released it first."""
        released = self._holds_released
        try:
            await asyncio.wait_for(released.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def release_holds(self) -> None:
        """Abandon every request held so far; later ones are held anew."""
        self._holds_released.set()
        self._holds_released = asyncio.Event()

    async def reset(self) -> None:
        self.release_holds()
        await self.lifecycle.stop(self.jobs.values())
        self.jobs.clear()
        self.operations.clear()
        self.exchanges.clear()
        self.index.clear()
        self.faults.clear()
        self.stats.clear()
        self.cache = inference.ImplicitCache(self.config.cache_threshold_tokens)

    async def drain(self) -> None:
        """Wait until every job created so far has reached a terminal state."""
        await self.lifecycle.drain()

    async def close(self) -> None:
        await self.reset()

    def apply_config(self, values: dict[str, Any]) -> None:
        self.config.update(values)
        self.cache.threshold_tokens = self.config.cache_threshold_tokens
        self.lifecycle.reconfigured()

    # ------------------------------------------------------------ the REST methods

    def create(self, project: str, location: str, body: Any, version: str = "v1") -> Job:
        request = parse_create_body(body, self.config.models, version)
        now = utcnow()
        job = Job(
            id=str(next(self._ids)),
            project=project,
            location=location,
            display_name=request.display_name,
            model=request.model,
            model_id=request.model_id,
            model_version_id=catalogue.version_id(request.model, request.model_id),
            input_config=request.input_config,
            output_config=request.output_config,
            labels=request.labels,
            create_time=now,
            update_time=now,
        )
        job.fault = self.faults.take_job_fault(request.display_name, job.labels)
        self.jobs[job.id] = job
        self.index.add(job)
        self.lifecycle.start(job)
        return job

    def job(self, job_id: str) -> Job:
        """A job by id alone, for the control API and the flat `batchPredictionJobs/{id}`."""
        if job_id not in self.jobs:
            raise ApiError(404, f"The BatchPredictionJob batchPredictionJobs/{job_id} does not exist.")
        return self.jobs[job_id]

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
        if page_token and not page_token.isdigit():
            raise ApiError(400, "Invalid page token.")
        return self.index.page(self.jobs, project, location, predicate, size, int(page_token) if page_token else None)

    def cancel(self, project: str, location: str, job_id: str) -> None:
        self.lifecycle.cancel(self.get(project, location, job_id))

    def delete(self, project: str, location: str, job_id: str) -> dict[str, Any]:
        job = self.get(project, location, job_id)
        if job.state not in TERMINAL:
            raise ApiError(
                400,
                f"BatchPredictionJob {job.name} is in state {job.state} and cannot be deleted; cancel it first.",
                "FAILED_PRECONDITION",
            )
        del self.jobs[job_id]
        self.index.remove(job)
        now = rfc3339(utcnow())
        parent = job.name.rsplit("/batchPredictionJobs/", 1)[0]
        operation_id = str(next(self._ids))
        self.operations[location, operation_id] = operation = {
            "name": f"{parent}/operations/{operation_id}",
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata",
                "genericMetadata": {"createTime": now, "updateTime": now},
            },
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }
        return operation

    def operation(self, project: str, location: str, operation_id: str) -> dict[str, Any]:
        """`operations.get`: the Operation a delete answered with (done at once)."""
        operation = self.operations.get((location, operation_id))
        number = operation["name"].split("/")[1] if operation else ""
        if operation is None or project not in (number, project_number(project)):
            name = f"projects/{project}/locations/{location}/operations/{operation_id}"
            raise ApiError(404, f"Operation {name} not found.")
        return operation

    async def record(self, request: Any, method: str, response: Any) -> None:
        """Keep one API call, its request and its answer, for `GET /emulator/v1/exchanges` (contract tests)."""
        raw = await request.read() if request.body_exists else b""
        self.exchanges.append(
            {
                "method": method,
                "httpMethod": request.method,
                "path": request.path,
                "query": dict(request.query),
                "request": _json_or_text(raw),
                "status": response.status,
                "response": _json_or_text(response.body or b""),
            }
        )
        while len(self.exchanges) > self.config.record_exchanges:
            self.exchanges.popleft()


def _json_or_text(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
