"""Runs one chaos trial on the running local stack: the plan's resources, faults, kills and spec changes;
then faults off, the operator running, and a bounded wait for the end state that `chaos_verdict` judges.

The Kubernetes API stand-in and the Vertex emulator run in this event loop, so the triggers of targeted
kills (a create the emulator answered, a status write) are read from them directly, every few
milliseconds; the operator is a process of its own, killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from typing import Any

from chaos_plan import TRIGGER_WAIT, WINDOW, Kill, Plan, ResourcePlan

from batch_inference_operator.core.identity import label_value
from batch_inference_operator.core.shards import child_name
from conftest import bij_path, call, control, job_manifest, requests_rows, write_jsonl

MERGE = {"Content-Type": "application/merge-patch+json"}
TERMINAL = frozenset({"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"})
VERTEX_TERMINAL = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)
FINAL_WAIT = 60.0  # after the plan ends: the bound within which every resource must have settled
JOBS_WAIT = 20.0  # then, the bound within which every Vertex job of the trial must have ended
TICK = 0.005  # how often triggers are polled


def held(status: dict[str, Any]) -> bool:
    """Suspended for good: phase Suspended, and every attempt's job recorded as ended (a suspend cancels
    the running job; until its end is recorded the resource is still suspending)."""
    attempts = status.get("attempts") or []
    ended = all(a.get("state") in VERTEX_TERMINAL for a in attempts if a.get("jobName"))
    return status.get("phase") == "Suspended" and ended


@dataclass
class Run:
    """What happened while the plan ran: the facts the verdict and the report need."""

    plan: Plan
    uids: dict[str, str] = field(default_factory=dict)  # resource name -> uid
    gone: dict[str, datetime.datetime] = field(default_factory=dict)  # deleted resource -> when it was gone
    kills_by: dict[str, int] = field(default_factory=dict)  # kill trigger -> kills performed
    fired: dict[str, int] = field(default_factory=dict)  # fault kind -> times it fired
    log_offset: int = 0
    seconds: float = 0.0
    settled: bool = False  # every resource reached its end state within FINAL_WAIT
    jobs: list[dict[str, Any]] = field(default_factory=list)  # the emulator's jobs of this trial, at the end
    objects: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # name -> stored resource at the end
    # a sharded resource's children at the end: parent name -> the child names of its shards, in order
    children: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the harness's own timeline, for the report
    events: list[str] = field(default_factory=list)  # the Kubernetes Events of the trial's resources


class Trial:
    def __init__(self, stack: Any, bucket: Any, plan: Plan) -> None:
        self.stack, self.bucket, self.plan = stack, bucket, plan
        self.run = Run(plan)
        self.loop = asyncio.get_running_loop()
        self.t0 = 0.0
        self.gone_watch: list[asyncio.Task[None]] = []

    def note(self, text: str) -> None:
        self.run.notes.append(f"{self.loop.time() - self.t0:6.2f}s {text}")

    def stored(self, name: str) -> dict[str, Any] | None:
        return self.stack.kube.get_object("batchinferencejobs", self.plan.namespace, name)

    def creates_seen(self) -> int:
        return sum(count for (method, _), count in self.stack.engine.stats.items() if method == "create")

    async def execute(self) -> Run:
        started = self.loop.time()
        self.run.log_offset = len(self.stack.operator_log())
        await self.prepare()
        self.t0 = self.loop.time()
        for resource in self.plan.resources:
            await self.create(resource)
        actors = [self.killer(), self.at(WINDOW)] + [self.actor(r) for r in self.plan.resources]
        await asyncio.wait_for(asyncio.gather(*actors), WINDOW + len(self.plan.kills) * (TRIGGER_WAIT + 35) + 10)
        plan_end = self.loop.time()
        await self.faults_off()
        if self.stack.operator is None or self.stack.operator.returncode is not None:
            await self.stack.start_operator()
        self.note("plan ended: faults off, the operator running")
        self.run.settled = await self.wait_for(self.settled, FINAL_WAIT)
        self.note(f"settled: {self.run.settled}")
        # A create held before the plan ended lands at most `max_hang` later; then every job must end.
        await asyncio.sleep(max(0.0, plan_end + self.plan.max_hang + 0.2 - self.loop.time()))
        await self.wait_for(self.jobs_ended, JOBS_WAIT)
        self.note("every Vertex job of the trial ended")
        for task in self.gone_watch:
            task.cancel()
        self.run.jobs = await self.trial_jobs()
        self.count_fired_faults((await control(self.stack, "GET", "/emulator/v1/stats"))["rows"])
        self.run.objects = {name: self.stored(name) for r in self.plan.resources for name in self.family(r)}
        self.run.children = {r.name: self.family(r)[1:] for r in self.plan.resources if r.shards}
        events = self.stack.kube.list_objects("events", self.plan.namespace)
        for event in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"])):
            name = event["involvedObject"]["name"]
            self.run.events.append(f"{name[-8:]} {event['type']} {event['reason']}: {event['message'][:240]}")
        self.run.seconds = self.loop.time() - started
        return self.run

    async def prepare(self) -> None:
        await control(self.stack, "POST", "/emulator/v1/reset")
        await control(self.stack, "PUT", "/emulator/v1/config", self.plan.emulator)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.plan.namespace}}
        code, body = await call(self.stack.kube, "POST", "/api/v1/namespaces", namespace)
        assert code == 201, body
        plan = {
            "api": [fault for _, fault in self.plan.api_faults],
            "rows": self.plan.row_faults,
            "jobs": [r.job_fault for r in self.plan.resources if r.job_fault],
        }
        await control(self.stack, "POST", "/emulator/v1/faults", plan)

    def input_of(self, resource: ResourcePlan) -> tuple[str, str]:
        """Input and output; the two resources sharing 63 characters also share their spec."""
        key = "shared" if self.plan.shared_prefix and resource.name.endswith(("-a", "-b")) else resource.name
        folder = f"{self.plan.namespace}/{key}"
        return f"gs://{self.bucket.name}/{folder}/in.jsonl", f"gs://{self.bucket.name}/{folder}/out/"

    async def create(self, resource: ResourcePlan) -> None:
        source, output = self.input_of(resource)
        blob = source.removeprefix(f"gs://{self.bucket.name}/")
        if self.bucket.get_blob(blob) is None:
            write_jsonl(self.bucket, blob, requests_rows(resource.rows))
        manifest = job_manifest(
            resource.name,
            source,
            output,
            namespace=self.plan.namespace,
            resume={"maxAttempts": 3, "backoffSeconds": resource.backoff_seconds},
            deletionPolicy="Cancel",
        )
        if resource.shards:  # preflight splits it (kills may land during the split and the shards' submits)
            manifest["spec"]["sharding"] = {"maxRequestsPerShard": resource.shards[0]}
        code, body = await call(self.stack.kube, "POST", bij_path(self.plan.namespace), manifest)
        assert code == 201, body
        self.run.uids[resource.name] = body["metadata"]["uid"]

    def family(self, resource: ResourcePlan) -> list[str]:
        """The resource's name and its shards' children's names."""
        return [resource.name] + [child_name(resource.name, i) for i in range(1, len(resource.shards) + 1)]

    def rows_of(self, resource: ResourcePlan) -> int:
        """Input rows of a resource (the shared pair reads the first one's file)."""
        if self.plan.shared_prefix and resource.name.endswith("-b"):
            return self.plan.resources[0].rows
        return resource.rows

    # ------------------------------------------------------------ the actors

    async def at(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.t0 + seconds - self.loop.time()))

    async def actor(self, resource: ResourcePlan) -> None:
        """The resource's spec changes, at their times (the operator need not be running)."""
        changes = [(resource.suspend_at, True), (resource.unsuspend_at, False)]
        events: list[tuple[float, str]] = [(t, "suspend" if s else "unsuspend") for t, s in changes if t is not None]
        if resource.delete_at is not None:
            events.append((resource.delete_at, "delete"))
        path = bij_path(self.plan.namespace, resource.name)
        for when, what in sorted(events):
            await self.at(when)
            if resource.name in self.run.gone or (resource.delete_at or WINDOW) < when:
                self.note(f"{what} {resource.name} skipped: deleted before")
                continue
            if what == "delete":
                code, body = await call(self.stack.kube, "DELETE", path)
                self.gone_watch.append(asyncio.create_task(self.watch_gone(resource)))
            else:
                code, body = await call(self.stack.kube, "PATCH", path, {"spec": {"suspend": what == "suspend"}}, MERGE)
            assert code in (200, 202), (what, code, body)
            self.note(f"{what} {resource.name}")
            kind = "delete" if what == "delete" else "suspend"
            self.run.fired[kind] = self.run.fired.get(kind, 0) + (what != "unsuspend")

    async def watch_gone(self, resource: ResourcePlan) -> None:
        """Note when a deleted resource is gone (its finalizer done; a sharded one's children too), to the
        poll's precision."""
        name = resource.name
        await self.wait_for(lambda: self.all_gone(resource), FINAL_WAIT + 60, 0.01)
        if self.all_gone(resource):
            self.run.gone[name] = datetime.datetime.now(datetime.UTC)
            self.note(f"{name} is gone")

    def all_gone(self, resource: ResourcePlan) -> bool:
        return all(self.stored(name) is None for name in self.family(resource))

    async def killer(self) -> None:
        """The plan's kills in order: wait for the trigger, SIGKILL, wait, start again."""
        for kill in self.plan.kills:
            if not await self.triggered(kill):
                self.note(f"kill {kill.trigger} #{kill.nth} skipped: no trigger within {TRIGGER_WAIT}s")
                continue
            await self.stack.stop_operator(kill=True)
            self.run.kills_by[kill.trigger] = self.run.kills_by.get(kill.trigger, 0) + 1
            self.note(f"SIGKILL ({kill.trigger}{'' if kill.trigger == 'uniform' else f' #{kill.nth}'})")
            await asyncio.sleep(kill.restart_after)
            await self.stack.start_operator()
            self.note("operator started")

    async def triggered(self, kill: Kill) -> bool:
        if kill.trigger == "uniform":
            await self.at(kill.at)
            return True
        if kill.trigger == "after-create":
            base = self.creates_seen() if kill is not self.plan.kills[0] else 0
            return await self.wait_for(lambda: self.creates_seen() >= base + kill.nth, TRIGGER_WAIT, TICK)
        seen = {r.name: self.status_of(r.name) for r in self.plan.resources}
        writes = 0

        def written() -> bool:
            nonlocal writes
            for name, before in seen.items():
                now = self.status_of(name)
                if now != before:
                    seen[name] = now
                    writes += 1
            return writes >= kill.nth

        return await self.wait_for(written, TRIGGER_WAIT, TICK)

    def status_of(self, name: str) -> Any:
        obj = self.stored(name)
        return None if obj is None else obj.get("status")

    async def faults_off(self) -> None:
        left = await control(self.stack, "GET", "/emulator/v1/faults")
        remaining = {fault.get("seed"): fault["count"] for fault in left["api"]}
        for kind, fault in self.plan.api_faults:
            self.run.fired[kind] = fault.get("count", 1) - remaining.get(fault.get("seed"), 0)
        await control(self.stack, "DELETE", "/emulator/v1/faults")

    def count_fired_faults(self, rows: dict[str, int]) -> None:
        """Job faults the emulator applied (by the kind that planned them) and rows it failed."""
        kinds = {"FAILED": "resume-failed", "CANCELLED": "vertex-cancelled", "PARTIALLY_SUCCEEDED": "partial"}
        for job in self.run.jobs:
            if job["fault"] in kinds:
                self.run.fired[kinds[job["fault"]]] = self.run.fired.get(kinds[job["fault"]], 0) + 1
        self.run.fired["row-errors"] = sum(count for code, count in rows.items() if code != "200")
        self.run.fired["shared-prefix"] = int(self.plan.shared_prefix)
        self.run.fired["sharded"] = sum(1 for resource in self.plan.resources if resource.shards)

    # ------------------------------------------------------------ the end state

    def settled(self) -> bool:
        done = True
        for resource in self.plan.resources:
            obj = self.stored(resource.name)
            if resource.delete_at is not None:
                done = done and self.all_gone(resource)
                continue
            status = (obj or {}).get("status") or {}
            if not (status.get("phase") in TERMINAL or (resource.suspended_at_end and held(status))):
                done = False
        return done

    async def trial_jobs(self) -> list[dict[str, Any]]:
        """Jobs of the trial's resources and of their shards' children (by the trial's namespace)."""
        uids = set(self.run.uids.values())
        namespace = label_value(self.plan.namespace)
        listed = await control(self.stack, "GET", "/emulator/v1/jobs")
        return [
            job
            for job in listed["jobs"]
            if job["labels"].get("bij-uid") in uids or job["labels"].get("bij-namespace") == namespace
        ]

    async def jobs_ended(self) -> bool:
        return all(job["state"] in VERTEX_TERMINAL for job in await self.trial_jobs())

    async def wait_for(self, predicate: Any, bound: float, interval: float = 0.05) -> bool:
        """Poll until `predicate` holds (True) or `bound` seconds pass (False)."""
        deadline = self.loop.time() + bound
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return True
            if self.loop.time() > deadline:
                return False
            await asyncio.sleep(interval)

    async def clean_up(self) -> None:
        """Delete what is left of the trial (finalizers included, for a resource that hung) and reset."""
        names = [name for resource in self.plan.resources for name in self.family(resource)]
        for name in names:
            if self.stored(name) is not None:
                await call(self.stack.kube, "DELETE", bij_path(self.plan.namespace, name))
        if not await self.wait_for(lambda: all(self.stored(name) is None for name in names), 20):
            for name in names:
                if self.stored(name) is not None:
                    path = bij_path(self.plan.namespace, name)
                    await call(self.stack.kube, "PATCH", path, {"metadata": {"finalizers": None}}, MERGE)
        await control(self.stack, "POST", "/emulator/v1/reset")
