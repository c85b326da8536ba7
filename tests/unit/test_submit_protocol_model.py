"""A stateful model check of the submit protocol: one BatchInferenceJob, a simulated Vertex, and the
interleavings hypothesis finds of turns, faults, restarts, clock moves, poller rounds, Vertex's own
progress, suspend and deletion.

The operator's code is the real one: `lifecycle.reconcile_resource` (decide, act, the status writes,
marker noting, tracking) behind the guard `handlers.turn` puts before it, `poller.poll_round`, and
`executor.cancel_all` as `release_resource` calls it. Vertex is simulated at the adapter boundary, and
the API server's status subresource at the writer's (`SimKube`): each write of a turn (the marker
before its create, the status after it) is stored, lost (refused, nothing stored), or stored without
an answer (the operator sees an error), as the step plans.

Invariants, after every step:
1. for each attempt, at most one of its jobs has reached RUNNING without a cancel reaching it before it
   finished (a duplicate cancelled before it runs bills nothing);
2. every job the persisted status names is a job at Vertex, labelled with that attempt;
3. liveness (teardown, unless a step failed or the resource was deleted): with faults off, suspend off
   and the clock moved once past the settle window, a few poller rounds and turns at the timer's interval
   (Vertex completing cancels) give the latest attempt an unfinished job, or end the resource.

The simulated Vertex assumes what the settle window rests on: a create the client got no answer to
lands, if ever, within the client timeout of being sent.

`make test` runs a derandomized default. A deep run: BIJ_MODEL_EXAMPLES=N (and BIJ_MODEL_STEPS=M) with
pytest -s prints its seed, which BIJ_MODEL_SEED replays, and what its examples did.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import hypothesis
import kopf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from batch_inference_operator.adapters.errors import AdapterError
from batch_inference_operator.adapters.vertex import UNREACHABLE
from batch_inference_operator.api import TERMINAL_PHASES, BatchInferenceJobStatus
from batch_inference_operator.api.meta import LABEL_ATTEMPT, LABEL_MANAGED_BY, LABEL_UID
from batch_inference_operator.controller import executor, poller
from batch_inference_operator.controller.kube import StatusConflict, WriteFailed
from batch_inference_operator.controller.lifecycle import reconcile_resource
from batch_inference_operator.controller.runtime import Runtime
from batch_inference_operator.core.admission import Queue
from batch_inference_operator.core.identity import MANAGED_BY, Resource, owner_labels
from batch_inference_operator.core.policy import Tenancy
from batch_inference_operator.core.vertex_jobs import (
    CANCELLED,
    CANCELLING,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    TERMINAL_STATES,
    JobRequest,
    ObservedJob,
)
from batch_inference_operator.settings import Settings

T0 = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
RESOURCE = Resource("team-a", "reviews", "uid-1")
TENANCY = Tenancy("demo-project", "us-central1")
SETTINGS = Settings(vertex_timeout=60.0, retry_base=5.0, retry_max=60.0)  # settle window: 2 x 60 + 30 s
SETTLE = datetime.timedelta(seconds=SETTINGS.create_settle_window)
LANDS_WITHIN = datetime.timedelta(seconds=SETTINGS.vertex_timeout)
SPEC: dict[str, Any] = {
    "model": "gemini-2.5-flash",
    "input": {"gcs": {"uris": ["gs://in-bucket/requests.jsonl"]}},
    "output": {"gcs": {"uriPrefix": "gs://out-bucket/results/"}},
    "preflight": "Disabled",
    "resume": {"maxAttempts": 10, "backoffSeconds": 0},  # many attempts: many creates
}
# What a create may do. late: times out, lands later; lost: times out, never lands; made-then-5xx: made at
# once, answered with a 503; throttled: 429, nothing made; unreachable: no connection, nothing sent;
# refused: 400, nothing made (the resource fails).
CREATE_OUTCOMES = ("ok", "late", "lost", "made-then-5xx", "throttled", "unreachable", "refused")
# Which of a step's LISTs (or GETs) fail with a 503, in call order; calls past the list succeed.
FAILURES = st.lists(st.booleans(), max_size=3)
# What becomes of a turn's status writes, in call order: stored, lost (refused), or stored unanswered.
WRITES = st.lists(st.sampled_from(("stored", "lost", "unanswered")), max_size=3)
LIVENESS_ROUNDS = 10

EXAMPLES = int(os.environ.get("BIJ_MODEL_EXAMPLES") or 0)
STEPS = int(os.environ.get("BIJ_MODEL_STEPS") or 80)
SEED = int(os.environ.get("BIJ_MODEL_SEED") or random.SystemRandom().randrange(2**32))

R = TypeVar("R")
RUN: Counter[str] = Counter()  # what a run's examples did, summed; a deep run prints it


class ModelLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is the model's: the runtime measures backoff and the read-your-writes
    grace on the loop's clock, so they pass as the model's time does, never with real time."""

    def __init__(self, now: Callable[[], datetime.datetime]) -> None:
        super().__init__()
        self._now = now

    def time(self) -> float:
        return (self._now() - T0).total_seconds()


@dataclass
class SimJob:
    name: str
    labels: dict[str, str]
    create_time: datetime.datetime
    state: str = PENDING
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    ran: bool = False  # reached RUNNING: its completed rows are billed
    cancelled: bool = False  # a cancel reached it before it finished

    @property
    def attempt(self) -> tuple[str, str]:
        return self.labels.get(LABEL_UID, ""), self.labels.get(LABEL_ATTEMPT, "")

    def observed(self) -> ObservedJob:
        return ObservedJob(self.name, self.state, self.create_time, self.start_time, self.end_time)

    def __repr__(self) -> str:
        flags = "".join(f" {flag}" for flag in ("ran", "cancelled") if getattr(self, flag))
        return f"<job {self.name.rsplit('/', 1)[-1]} attempt {self.attempt[1]} {self.state}{flags}>"


@dataclass
class InFlight:
    """A create the client got no answer to, that Vertex will make by `deadline`."""

    labels: dict[str, str]
    deadline: datetime.datetime


def unavailable(action: str) -> AdapterError:
    return AdapterError(f"{action}: Vertex AI answered 503 UNAVAILABLE", retryable=True, code=503, status="UNAVAILABLE")


@dataclass
class SimVertex:
    """Vertex's batch jobs as the executor and the poller call them, with the faults the model plans for
    the current step (`plan`), consumed in call order."""

    now: Callable[[], datetime.datetime]
    jobs: dict[str, SimJob] = field(default_factory=dict)
    in_flight: list[InFlight] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what happened worth counting, for hypothesis' statistics
    _lists: list[bool] = field(default_factory=list)
    _gets: list[bool] = field(default_factory=list)
    _create: str = "ok"
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def plan(self, lists: Iterable[bool] = (), gets: Iterable[bool] = (), create: str = "ok") -> None:
        self._lists, self._gets, self._create = list(lists), list(gets), create

    def make(self, labels: dict[str, str], at: datetime.datetime) -> SimJob:
        name = f"projects/123/locations/us-central1/batchPredictionJobs/{next(self._ids)}"
        job = SimJob(name, dict(labels), at)
        twins = [other for other in self.jobs.values() if other.attempt == job.attempt]
        if twins:
            self.notes.append("a second job of one attempt was made")
        self.jobs[name] = job
        return job

    def land(self, flight: InFlight, at: datetime.datetime) -> None:
        self.in_flight.remove(flight)
        self.make(flight.labels, at)

    def _newest_first(self) -> list[SimJob]:
        return sorted(self.jobs.values(), key=lambda job: job.create_time, reverse=True)

    async def get(self, project: str, location: str, name: str) -> ObservedJob:
        if self._gets and self._gets.pop(0):
            raise unavailable(f"get {name}")
        if name not in self.jobs:
            raise AdapterError(f"get {name}: Vertex AI answered 404 NOT_FOUND", retryable=False, code=404)
        return self.jobs[name].observed()

    async def find_by_labels(
        self, project: str, location: str, labels: dict[str, str], states: Iterable[str] = ()
    ) -> list[ObservedJob]:
        if self._lists and self._lists.pop(0):
            raise unavailable(f"list jobs in {project}/{location}")
        wanted = set(states)
        return [
            job.observed()
            for job in self._newest_first()
            if all(job.labels.get(k) == v for k, v in labels.items()) and (not wanted or job.state in wanted)
        ]

    async def list_managed(self, project: str, location: str, since: datetime.datetime | None) -> list[ObservedJob]:
        jobs = await self.find_by_labels(project, location, {LABEL_MANAGED_BY: MANAGED_BY})
        return [job for job in jobs if since is None or (job.create_time and job.create_time >= since)]

    async def create(self, request: JobRequest, attempt: int) -> ObservedJob:
        outcome, self._create = self._create, "ok"
        self.notes.append(f"a create was sent ({outcome})")
        action = f"create the Vertex job for attempt {attempt}"
        if outcome == "ok":
            return self.make(request.labels, self.now()).observed()
        if outcome in ("late", "lost"):
            if outcome == "late":
                self.in_flight.append(InFlight(dict(request.labels), self.now() + LANDS_WITHIN))
            raise AdapterError(f"{action}: Vertex AI did not answer in time", retryable=True)
        if outcome == "made-then-5xx":
            self.make(request.labels, self.now())
            raise unavailable(action)
        if outcome == "throttled":
            raise AdapterError(f"{action}: Vertex AI answered 429", retryable=True, code=429)
        if outcome == "unreachable":
            raise AdapterError(f"{action}: could not connect", retryable=True, reason=UNREACHABLE)
        assert outcome == "refused", outcome
        raise AdapterError(f"{action}: Vertex AI answered 400 INVALID_ARGUMENT", retryable=False, code=400)

    async def cancel(self, project: str, location: str, name: str) -> None:
        job = self.jobs[name]
        if job.state in TERMINAL_STATES:
            raise AdapterError(f"cancel {name}: finished", retryable=False, code=400, status="FAILED_PRECONDITION")
        if not job.cancelled:
            job.state, job.cancelled = CANCELLING, True
            self.notes.append("a job that ran was cancelled" if job.ran else "a job was cancelled before it ran")


@dataclass
class SimKube:
    """The resource's status subresource: merge patches, a resourceVersion, planned write failures."""

    status: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    _writes: list[str] = field(default_factory=list)

    def plan(self, writes: Iterable[str] = ()) -> None:
        self._writes = list(writes)

    async def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        outcome = self._writes.pop(0) if self._writes else "stored"
        if resource_version is not None and resource_version != str(self.version):
            raise StatusConflict(f"{resource_version} is not {self.version}")
        if outcome == "lost":
            raise WriteFailed("PATCH status: 503")
        self.status = apply_merge_patch(self.status, copy.deepcopy(patch))
        self.version += 1
        if outcome == "unanswered":
            raise WriteFailed("PATCH status: timed out")
        return {"metadata": {"resourceVersion": str(self.version)}, "status": copy.deepcopy(self.status)}


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """What the API server does with a JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = apply_merge_patch(merged.get(key), value)
    return merged


class SubmitProtocolModel(RuleBasedStateMachine):
    """One resource, its persisted status, the operator process's runtime, and the simulated Vertex."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.loop = ModelLoop(lambda: self.now)
        self.vertex = SimVertex(lambda: self.now)
        self.kube = SimKube()  # the status as the API server stores it
        self.runtime = self._new_runtime()
        self.resource = RESOURCE
        self.spec = dict(SPEC)
        self.deleting = self.deleted = False
        self.steps = -1

    def _new_runtime(self) -> Runtime:
        runtime = Runtime(SETTINGS, self.vertex)  # type: ignore[arg-type]
        runtime.clock = lambda: self.now
        return runtime

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        return self.loop.run_until_complete(coroutine)

    # ------------------------------------------------------------------ the operator

    @property
    def status(self) -> dict[str, Any]:
        return self.kube.status

    @precondition(lambda self: not self.deleting)
    @rule(create=st.sampled_from(CREATE_OUTCOMES), lists=FAILURES, gets=FAILURES, writes=WRITES)
    def turn(
        self, create: str = "ok", lists: Iterable[bool] = (), gets: Iterable[bool] = (), writes: Iterable[str] = ()
    ) -> None:
        """One turn, its status writes stored, lost or unanswered as `writes` says."""
        self.vertex.plan(lists, gets, create)
        self.kube.plan(writes)
        self._run(self._turn())
        self.vertex.plan()
        self.kube.plan()

    @precondition(lambda self: not self.deleting)
    @rule(create=st.sampled_from(CREATE_OUTCOMES))
    def calm_turn(self, create: str = "ok") -> None:
        """A turn whose LISTs, GETs and write succeed (and a second rule, so turns are drawn more often)."""
        self.turn(create)

    @precondition(lambda self: not self.deleting)
    @rule(create=st.sampled_from(CREATE_OUTCOMES))
    def timer(self, create: str = "ok") -> None:
        """The operator's ordinary life: the timer's interval passes, and a turn without other faults runs."""
        self.advance(datetime.timedelta(seconds=SETTINGS.reconcile_interval))
        self.turn(create)

    async def _turn(self) -> None:
        runtime, uid = self.runtime, self.resource.uid
        if runtime.held(uid) or runtime.stale(uid, self.status):  # as handlers.turn
            return
        meta = {
            "name": self.resource.name,
            "namespace": self.resource.namespace,
            "uid": uid,
            "resourceVersion": str(self.kube.version),
        }
        body = kopf.Body({"metadata": meta, "spec": copy.deepcopy(self.spec), "status": copy.deepcopy(self.status)})
        done = await reconcile_resource(runtime, body, self.kube, self.resource, "", TENANCY, Queue())
        internal = [event.message for event in done.events if event.reason == "InternalError"]
        assert not internal, internal

    @rule(lists=FAILURES)
    def poll(self, lists: Iterable[bool] = ()) -> None:
        """One poller round: the LIST that feeds the observations, then the duplicate watch."""
        self.vertex.plan(lists)
        self._run(poller.poll_round(self.runtime))
        self.vertex.plan()

    @rule()
    def restart(self) -> None:
        """A new operator process: the runtime (fresh markers, backoff, awaited writes) is lost."""
        self.runtime = self._new_runtime()

    @precondition(lambda self: not self.deleting)
    @rule(on=st.booleans())
    def suspend(self, on: bool) -> None:
        if bool(self.spec.get("suspend")) != on:
            self.spec = {**self.spec, "suspend": on}
            self.resource = replace(self.resource, generation=self.resource.generation + 1)

    @precondition(lambda self: not self.deleted and bool(self.vertex.jobs or self.vertex.in_flight))
    @rule(lists=FAILURES)
    def delete(self, lists: Iterable[bool] = ()) -> None:
        """The deletion handler, as `release_resource` runs it with deletionPolicy Cancel; a failed LIST
        keeps the finalizer, and kopf runs the handler again (this rule, again)."""
        self.deleting = True
        self.runtime.forget(self.resource.uid)
        status = self.status
        if status.get("phase") in TERMINAL_PHASES or not status.get("attempts"):
            self.deleted = True
            return
        self.vertex.plan(lists)
        try:
            labels = owner_labels(self.resource.uid)
            self._run(executor.cancel_all(self.vertex, status["project"], status["location"], labels))
        except AdapterError:
            return
        finally:
            self.vertex.plan()
        self.deleted = True

    # ------------------------------------------------------------------ the world

    @rule(seconds=st.integers(1, 40))
    def tick(self, seconds: int) -> None:
        self.advance(datetime.timedelta(seconds=seconds))

    @rule(beyond=st.integers(1, 150))
    def jump(self, beyond: int) -> None:
        """Past the settle window: a slow operator, a long backoff, a failover."""
        self.advance(SETTLE + datetime.timedelta(seconds=beyond))

    def advance(self, by: datetime.timedelta) -> None:
        """Move the clock; a create in flight lands by its deadline."""
        self.now += by
        for flight in sorted(self.vertex.in_flight, key=lambda f: f.deadline):
            if flight.deadline <= self.now:
                self._land(flight, flight.deadline)

    @precondition(lambda self: bool(self.vertex.in_flight))
    @rule(pick=st.integers(0, 3))
    def land(self, pick: int) -> None:
        """A create that timed out is made at Vertex now."""
        self._land(self.vertex.in_flight[pick % len(self.vertex.in_flight)], self.now)

    def _land(self, flight: InFlight, at: datetime.datetime) -> None:
        self.vertex.land(flight, at)
        if self.deleted:  # not an invariant of this model: counted in RUN
            self.vertex.notes.append("a create landed after its resource was deleted: its job runs unowned")

    @precondition(lambda self: any(job.state == PENDING for job in self.vertex.jobs.values()))
    @rule()
    def vertex_schedules(self) -> None:
        """Vertex has capacity: every pending job starts running."""
        for job in self.vertex.jobs.values():
            if job.state == PENDING:
                job.state, job.start_time, job.ran = RUNNING, self.now, True

    @precondition(lambda self: any(job.state not in TERMINAL_STATES for job in self.vertex.jobs.values()))
    @rule(pick=st.integers(0, 3), fails=st.booleans())
    def vertex_moves(self, pick: int, fails: bool) -> None:
        """A job moves on: PENDING -> RUNNING -> SUCCEEDED (or FAILED); CANCELLING -> CANCELLED."""
        live = [job for job in self.vertex.jobs.values() if job.state not in TERMINAL_STATES]
        job = live[pick % len(live)]
        if job.state == PENDING:
            job.state, job.start_time, job.ran = RUNNING, self.now, True
        elif job.state == RUNNING:
            job.state, job.end_time = (FAILED if fails else SUCCEEDED), self.now
        else:
            job.state, job.end_time = CANCELLED, self.now

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def invariants_hold(self) -> None:
        """Before the first step and after each (one line per step in a printed counterexample)."""
        self.steps += 1
        self.assert_invariants()

    def one_billed_job_per_attempt(self) -> None:
        billed = Counter(job.attempt for job in self.vertex.jobs.values() if job.ran and not job.cancelled)
        twice = [attempt for attempt, count in billed.items() if count > 1]
        assert not twice, f"two jobs of one attempt ran and neither was cancelled: {list(self.vertex.jobs.values())}"

    def status_names_existing_jobs(self) -> None:
        status = BatchInferenceJobStatus.model_validate(self.status)
        for attempt in status.attempts:
            if attempt.job_name is not None:
                job = self.vertex.jobs.get(attempt.job_name)
                assert job is not None, f"attempt {attempt.attempt} names {attempt.job_name}, which Vertex has not"
                assert job.attempt == (self.resource.uid, str(attempt.attempt)), f"{job} is not attempt {attempt}"
        assert status.job is None or status.job.name in self.vertex.jobs, f"status.job is {status.job}"

    def assert_invariants(self) -> None:
        """Both invariants, for callers outside hypothesis (liveness, the kept counterexamples)."""
        self.one_billed_job_per_attempt()
        self.status_names_existing_jobs()

    def progressed(self) -> bool:
        """The resource ended, or its latest attempt has a job that has not finished."""
        status = BatchInferenceJobStatus.model_validate(self.status)
        if status.phase in TERMINAL_PHASES:
            return True
        name = status.attempts[-1].job_name if status.attempts else None
        return name is not None and self.vertex.jobs[name].state not in TERMINAL_STATES

    def settle_without_faults(self) -> None:
        """Liveness: faults off, suspend off, the clock past every settle window and backoff; then the
        operator's ordinary life (poller rounds, and turns at the timer's interval) while Vertex
        completes cancels."""
        self.suspend(False)
        self.advance(SETTLE + datetime.timedelta(seconds=1))
        for _ in range(LIVENESS_ROUNDS):
            if self.progressed():
                return
            for job in self.vertex.jobs.values():
                if job.state == CANCELLING:
                    job.state, job.end_time = CANCELLED, self.now
            self.poll()
            self.timer()
            self.assert_invariants()
        assert self.progressed(), f"no progress after {LIVENESS_ROUNDS} fault-free turns: {self.status}"

    def teardown(self) -> None:
        try:
            if hypothesis.currently_in_test_context():
                self.report()
            # In hypothesis' `finally`: a step that failed is the failure to report, not liveness after it.
            if sys.exc_info()[0] is None and not self.deleting:
                self.settle_without_faults()
        finally:
            self.loop.close()

    def report(self) -> None:
        """What this example did, into RUN (a deep run prints it); and a target that steers the search
        toward more jobs of one attempt."""
        jobs = Counter(job.attempt for job in self.vertex.jobs.values())
        hypothesis.target(max(jobs.values(), default=0), label="jobs of one attempt")
        RUN.update(examples=1, steps=self.steps, **{f"examples where {note}": 1 for note in set(self.vertex.notes)})
        if self.deleted and self.vertex.in_flight:
            RUN["examples where a create was in flight when the resource was deleted"] += 1


def model_settings() -> settings:
    """The default: derandomized and small enough for `make test`. BIJ_MODEL_EXAMPLES: a deep random run."""
    return settings(
        max_examples=EXAMPLES or 400,
        stateful_step_count=STEPS,
        derandomize=not EXAMPLES,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def test_the_submit_protocol_model() -> None:
    if EXAMPLES:
        print(f"submit protocol model: {EXAMPLES} examples of {STEPS} steps, BIJ_MODEL_SEED={SEED}")
    RUN.clear()
    run_state_machine_as_test(hypothesis.seed(SEED)(SubmitProtocolModel), settings=model_settings())
    if EXAMPLES:
        print("\n".join(f"{count:8d} {what}" for what, count in sorted(RUN.items())))
