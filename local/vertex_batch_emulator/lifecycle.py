"""A job's way through its states at the configured pace, and the calls that steer it.

    QUEUED -> PENDING -> RUNNING -> SUCCEEDED | FAILED | PARTIALLY_SUCCEEDED
    RUNNING -> PAUSED -> RUNNING, RUNNING -> UPDATING -> RUNNING        (the control API)
    QUEUED | PENDING | RUNNING | PAUSED -> CANCELLING -> CANCELLED     (cancel)
    QUEUED | PENDING -> EXPIRED                                        (the queue limit)

Admission: each project has `maxRunningJobsPerProject` slots (0: no limit). A job takes one when it
becomes PENDING and gives it back when it ends; a job created while all are taken waits QUEUED,
first in first out. A job that has waited QUEUED and PENDING longer than `queueLimitSeconds` ends
EXPIRED without running. A cancel moves a job to CANCELLING, which lasts `cancellingSeconds` and
at least until its rows have stopped (with 0, a job that has not started is CANCELLED at once); an
UPDATING job goes back to RUNNING first, as Vertex allows UPDATING no other way out. A paused,
updating or stalled job never ends before it is let go, unless it is cancelled.

Each job's coroutine waits on its own event, set by every call that changes what it waits for, with
the nearest deadline as its timeout: nothing polls. Rows run in a worker thread (`processing`) that
the job's `Gate` holds between rows while the job is paused or stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from . import bigquery as bq
from .config import Config
from .errors import ApiError
from .jobs import TERMINAL, Job, project_number, rfc3339
from .processing import JobProcessor, Outcome

QUEUED, PENDING, RUNNING = "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"
PAUSED, UPDATING, CANCELLING = "JOB_STATE_PAUSED", "JOB_STATE_UPDATING", "JOB_STATE_CANCELLING"
CANCELLED, EXPIRED, FAILED = "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "JOB_STATE_FAILED"
CANCELED_ERROR = {"code": 1, "message": "CANCELED"}
STALLED = "stalled"


class Lifecycle:
    def __init__(self, config: Callable[[], Config], processor: JobProcessor) -> None:
        self._config = config  # read at each use: the engine's values change under running jobs
        self._processor = processor
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeups: dict[str, asyncio.Event] = {}
        self._slots: defaultdict[str, set[str]] = defaultdict(set)  # project number -> ids holding a slot
        self._queues: defaultdict[str, deque[Job]] = defaultdict(deque)
        self._updates: dict[str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------ starting and stopping

    def start(self, job: Job) -> None:
        """Admit a new job (PENDING) or queue it (QUEUED), and set it on its way."""
        project = project_number(job.project)
        self._admit(project)
        limit = self._config().max_running_jobs_per_project
        if self._queues[project] or (limit and len(self._slots[project]) >= limit):
            job.state = QUEUED
            self._queues[project].append(job)
        else:
            self._slots[project].add(job.id)
        job.timeline.append({"state": job.state, "time": rfc3339(job.create_time)})
        self._wakeups[job.id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, jobs: Iterable[Job]) -> None:
        """Stop every job at once: reset and shutdown. Cancelling opens held workers' gates."""
        for job in jobs:
            job.gate.cancel()
        for timer in self._updates.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._updates.clear()
        self._wakeups.clear()
        self._slots.clear()
        self._queues.clear()

    async def drain(self) -> None:
        """Wait until every job started so far has ended."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def reconfigured(self) -> None:
        """New config values: let in what a higher limit allows, and wake every job to its new deadlines."""
        for project in list(self._queues):
            self._admit(project)
        for wakeup in self._wakeups.values():
            wakeup.set()

    # ------------------------------------------------------------ cancel and the control calls

    def cancel(self, job: Job) -> None:
        if job.state in TERMINAL:
            raise _precondition(f"Cannot cancel BatchPredictionJob {job.name} in state {job.state}.")
        job.gate.cancel()
        with contextlib.suppress(ValueError):
            self._queues[project_number(job.project)].remove(job)
        if job.state in (RUNNING, PAUSED) or (job.state in (QUEUED, PENDING) and self._config().cancelling_seconds):
            self._to_cancelling(job)
        self._wake(job)

    def pause(self, job: Job) -> None:
        """Processing stops after the row in hand; the counts stay as they are."""
        _require(job, RUNNING, "paused")
        job.gate.hold(PAUSED)
        job.move(PAUSED)
        self._wake(job)

    def unpause(self, job: Job) -> None:
        _require(job, PAUSED, "unpaused")
        job.move(RUNNING)
        job.gate.release(PAUSED)
        self._wake(job)

    def update(self, job: Job, seconds: float) -> None:
        """UPDATING for `seconds`, then RUNNING again; rows go on meanwhile."""
        _require(job, RUNNING, "updated")
        job.move(UPDATING)
        self._updates[job.id] = asyncio.get_running_loop().call_later(seconds, self._updated, job)

    def stall(self, job: Job) -> None:
        """The job keeps its state and stops making progress: no rows, no end, until `unstall`."""
        if job.state in TERMINAL or job.gate.holds(STALLED):
            state = "stalled already" if job.gate.holds(STALLED) else f"in state {job.state}"
            raise _precondition(f"BatchPredictionJob {job.name} is {state} and cannot be stalled.")
        job.gate.hold(STALLED)
        self._wake(job)

    def unstall(self, job: Job) -> None:
        if not job.gate.holds(STALLED):
            raise _precondition(f"BatchPredictionJob {job.name} is not stalled.")
        job.gate.release(STALLED)
        self._wake(job)

    # ------------------------------------------------------------ the state machine

    async def _run(self, job: Job) -> None:
        project = project_number(job.project)
        try:
            await self._go(job)
        finally:
            self._slots[project].discard(job.id)
            with contextlib.suppress(ValueError):
                self._queues[project].remove(job)
            self._wakeups.pop(job.id, None)
            if timer := self._updates.pop(job.id, None):
                timer.cancel()
            self._admit(project)

    async def _go(self, job: Job) -> None:
        config = self._config

        def expiry() -> float:
            return job.queued_at + config().queue_limit_seconds

        if not await self._until(job, lambda: job.state != QUEUED or job.gate.cancelled, expiry):
            job.move(EXPIRED)
            return
        if not job.gate.cancelled:
            pending_since = time.monotonic()
            await self._until(
                job, lambda: job.gate.cancelled, lambda: min(pending_since + config().queue_seconds, expiry())
            )
        if job.gate.cancelled:
            await self._end(job, Outcome(CANCELLED, CANCELED_ERROR))
        elif time.monotonic() >= expiry() or (job.fault is not None and job.fault.outcome == "EXPIRED"):
            job.move(EXPIRED)
        else:
            await self._end(job, await self._execute(job))

    async def _execute(self, job: Job) -> Outcome:
        started = time.monotonic()
        job.move(RUNNING)
        job.output_info = _output_info(job)
        try:
            outcome = await asyncio.to_thread(self._processor.process, job)
        except Exception as error:  # an emulator bug must not leave a job RUNNING forever
            outcome = Outcome(FAILED, {"code": 13, "message": f"System error: {error!r}"})
        if outcome.state == "JOB_STATE_SUCCEEDED":
            await self._until(job, lambda: job.gate.cancelled, lambda: started + self._config().min_run_seconds)
        await self._until(job, lambda: not self._held(job), None)
        if job.gate.cancelled and outcome.state not in (FAILED, CANCELLED):
            outcome = Outcome(CANCELLED, CANCELED_ERROR)  # CANCELLING ends SUCCEEDED, FAILED or CANCELLED
        return outcome

    async def _end(self, job: Job, outcome: Outcome) -> None:
        if job.state == CANCELLING:
            await self._until(
                job, lambda: False, lambda: (job.cancelling_since or 0) + self._config().cancelling_seconds
            )
        job.error = outcome.error
        job.move(outcome.state)

    def _held(self, job: Job) -> bool:
        return job.state in (PAUSED, UPDATING) or (job.gate.holds(STALLED) and not job.gate.cancelled)

    def _updated(self, job: Job) -> None:
        self._updates.pop(job.id, None)
        if job.state == UPDATING:
            job.move(RUNNING)
            if job.gate.cancelled:
                self._to_cancelling(job)
            self._wake(job)

    def _to_cancelling(self, job: Job) -> None:
        job.cancelling_since = time.monotonic()
        job.move(CANCELLING)

    def _admit(self, project: str) -> None:
        """Let queued jobs of `project` in, first come first served, while it has free slots."""
        limit = self._config().max_running_jobs_per_project
        queue, slots = self._queues[project], self._slots[project]
        while queue and (not limit or len(slots) < limit):
            job = queue.popleft()
            slots.add(job.id)
            job.move(PENDING)
            self._wake(job)

    def _wake(self, job: Job) -> None:
        if wakeup := self._wakeups.get(job.id):
            wakeup.set()

    async def _until(self, job: Job, ready: Callable[[], bool], deadline: Callable[[], float] | None) -> bool:
        """Wait until `ready()` (True) or the monotonic `deadline()` (False), woken by the job's event."""
        wakeup = self._wakeups[job.id]
        while not ready():
            timeout = None
            if deadline is not None:
                timeout = deadline() - time.monotonic()
                if timeout <= 0:
                    return False
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)
        return True


def _output_info(job: Job) -> dict[str, str]:
    """Where a job writes, named from its create time as the API documents: a new Cloud Storage
    directory `prediction-model-<time>`, or a `predictions_<time>` table (in a new dataset
    `prediction_model_<time>` for a `bq://project` destination). Gemini's publisher models show as
    `model` in these names, as Vertex's own directories do."""
    created = job.create_time
    if job.writes_bigquery:
        table_stamp = created.strftime("%Y_%m_%dT%H_%M_%S_%fZ")
        if project := bq.project_only(job.output_prefix):
            stamp = created.strftime("%Y_%m_%dT%H_%M_%S_") + f"{created.microsecond // 1000:03d}Z"
            return {
                "bigqueryOutputDataset": f"bq://{project}.prediction_model_{stamp}",
                "bigqueryOutputTable": f"predictions_{table_stamp}",
            }
        target = bq.BqPath.parse(job.output_prefix)
        return {
            "bigqueryOutputDataset": target.dataset_uri,
            "bigqueryOutputTable": target.table or f"predictions_{table_stamp}",
        }
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"gcsOutputDirectory": f"{job.output_prefix.rstrip('/')}/prediction-model-{stamp}"}


def _precondition(message: str) -> ApiError:
    return ApiError(400, message, "FAILED_PRECONDITION")


def _require(job: Job, state: str, done: str) -> None:
    if job.state != state:
        raise _precondition(f"BatchPredictionJob {job.name} is in state {job.state}; only a {state} job can be {done}.")
