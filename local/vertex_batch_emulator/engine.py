"""Batch prediction jobs: the registry and the lifecycle.

The engine holds the jobs and answers the REST methods on them (create, get, list, cancel, delete).
Each job goes PENDING -> RUNNING -> a terminal state at the configured pace: it queues for
`queue_seconds`, is processed in a worker thread (`processing`, as the Google clients are
synchronous), and stays RUNNING at least `min_run_seconds`. When it starts running it is given its
output location: a new Cloud Storage directory, or a BigQuery table (the named one, or a new
`predictions_<timestamp>` in the named dataset). Create bodies arrive checked, from `validation`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

from . import bigquery as bq
from . import inference
from .config import Config
from .errors import ApiError
from .faults import FaultPlan
from .filtering import compile_filter
from .jobs import TERMINAL, Job, project_number, rfc3339, utcnow
from .processing import JobProcessor, Outcome
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
        self.faults = FaultPlan()
        self.stats: Counter[tuple[str, int]] = Counter()
        self.cache = inference.ImplicitCache(self.config.cache_threshold_tokens)
        self._ids = itertools.count(int(time.time()) * 10**9 % 10**18 + 10**18)
        self._tasks: set[asyncio.Task[None]] = set()
        self._processor = JobProcessor(self)
        self._holds_released = asyncio.Event()

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
            outcome = await asyncio.to_thread(self._processor.process, job)
        except Exception as error:  # an emulator bug must not leave a job RUNNING forever
            outcome = Outcome("JOB_STATE_FAILED", {"code": 13, "message": f"System error: {error!r}"})
        remaining = self.config.min_run_seconds - (time.monotonic() - started)
        if remaining > 0 and outcome.state == "JOB_STATE_SUCCEEDED" and await self._wait_or_cancel(job, remaining):
            outcome = Outcome("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
        job.error = outcome.error
        job.move(outcome.state)
