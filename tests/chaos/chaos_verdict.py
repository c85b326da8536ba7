"""The verdict on one trial: duplicates, lost, stuck and leaked, from the emulator's jobs (their labels,
states, timelines and row counts) and the resources as the Kubernetes API stores them at the end.

`DEFINITIONS` is the text printed with every run; the functions below are those definitions as code.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from chaos_trial import FINAL_WAIT, TERMINAL, VERTEX_TERMINAL, Run, held

DEFINITIONS = f"""\
paid job    a Vertex job whose timeline reached JOB_STATE_RUNNING (so it was not cancelled before it ran), or
            that processed a row.
duplicates  attempts (bij-uid, bij-attempt) with more than one paid job; for a sharded resource, shard attempts
            (the shard's child resource by name, bij-attempt) with more than one, and any job of the parent itself.
lost        resources (not deleted, settled) whose status
            (a) names for an attempt a job the emulator does not hold, or one labelled with another uid or attempt;
            (b) does not name, for an attempt number that has a paid job, one of that attempt's paid jobs;
            (c) records an attempt's state other than its job's final state, or is finished while that job is not;
            (d) did not count the rows of an attempt whose job ran and ended: attempt.rows unset, rows.succeeded
                other than the job's successful count, or attempt.completionStats other than the job's;
            (e) ended Succeeded or PartiallySucceeded with usage.requests other than the input's row count, or
                usage.succeeded other than completionStats.successful;
            (f) for a sharded resource: a planned shard whose child resource is missing (unless the parent
                was held suspended throughout), a shard's job without that shard's bij-shard label, or, once
                it ended, a roll-up that disagrees with the children (shardsDone, shards[].state and .job,
                completionStats.successful; usage.requests and the manifest's rows when it Succeeded); each
                child is judged as a resource of its own, with its shard's rows.
stuck       resources neither terminal nor (when the plan left them so) Suspended within {FINAL_WAIT:.0f} s after the
            plan ended; deleted resources still present then; or an end state without a condition saying why
            (terminal: Finished=True, and Complete=True or Failed=True with a reason; suspended: Suspended=True,
            and every attempt's job recorded as ended).
leaked      deleted resources (deletionPolicy Cancel) with a job still unfinished at the end, or a job that entered
            RUNNING, or ended uncancelled, after the resource was gone."""


@dataclass
class Verdict:
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)  # resource -> end phase (or "deleted")

    @property
    def failed(self) -> bool:
        return bool(self.duplicates or self.lost or self.stuck or self.leaked)


def paid(job: dict[str, Any]) -> bool:
    states = [step["state"] for step in job["timeline"]]
    return "JOB_STATE_RUNNING" in states or job["rows"]["processed"] > 0


def when(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)


def brief(job: dict[str, Any]) -> str:
    """A job in one line: id, attempt, state, rows and its way through the states."""
    steps = " > ".join(f"{s['state'].removeprefix('JOB_STATE_')}@{s['time'][11:23]}" for s in job["timeline"])
    return (
        f"job {job['id']} (attempt {job['labels'].get('bij-attempt')}, {job['state'].removeprefix('JOB_STATE_')}, "
        f"processed {job['rows']['processed']}): {steps}"
    )


def judge(run: Run) -> Verdict:
    verdict = Verdict()
    by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in run.jobs:
        by_uid[job["labels"]["bij-uid"]].append(job)
        by_name[job["labels"].get("bij-name", "")].append(job)
    for resource in run.plan.resources:
        uid = run.uids[resource.name]
        jobs = by_uid.get(uid, [])
        if resource.shards:
            sharded(run, resource, jobs, by_name, verdict)
            continue
        duplicates(resource.name, jobs, verdict)
        obj = run.objects.get(resource.name)
        if resource.delete_at is not None:
            verdict.phases[resource.name] = "deleted" if obj is None else "deleting"
            if obj is not None:
                verdict.stuck.append(f"{resource.name}: deleted at {resource.delete_at}s, still present")
            else:
                leaked(resource.name, jobs, run.gone.get(resource.name), verdict)
            continue
        status = (obj or {}).get("status") or {}
        verdict.phases[resource.name] = status.get("phase") or "none"
        if stuck(resource.name, status, resource.suspended_at_end, verdict):
            continue
        rows = run.plan.resources[0].rows if run.plan.shared_prefix and resource.name.endswith("-b") else resource.rows
        lost(resource.name, uid, status, jobs, rows, verdict)
    return verdict


def duplicates(name: str, jobs: list[dict[str, Any]], verdict: Verdict) -> None:
    by_attempt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        if paid(job):
            by_attempt[job["labels"].get("bij-attempt", "?")].append(job)
    for attempt, group in sorted(by_attempt.items()):
        if len(group) > 1:
            verdict.duplicates.append(
                f"{name} attempt {attempt}: {len(group)} paid jobs: " + "; ".join(map(brief, group))
            )


def sharded(
    run: Run, resource: Any, own: list[dict[str, Any]], by_name: dict[str, list[dict[str, Any]]], verdict: Verdict
) -> None:
    """A sharded resource: each child judged as a resource with its shard's rows, the parent's roll-up
    against them, and no Vertex job of the parent's own."""
    name, children = resource.name, run.children[resource.name]
    if own:
        verdict.duplicates.append(f"{name}: the sharded resource has jobs of its own: " + "; ".join(map(brief, own)))
    for index, child in enumerate(children, 1):
        duplicates(f"{name} shard {index}", by_name.get(child, []), verdict)
        unlabelled = [job for job in by_name.get(child, []) if job["labels"].get("bij-shard") != f"{index:05d}"]
        verdict.lost += [f"{name}: (f) shard {index}: {brief(job)} without bij-shard {index:05d}" for job in unlabelled]
    if resource.delete_at is not None:
        present = [n for n in (name, *children) if run.objects.get(n) is not None]
        verdict.phases[name] = "deleting" if present else "deleted"
        if present:
            verdict.stuck.append(f"{name}: deleted at {resource.delete_at}s, still present: {', '.join(present)}")
        for child in children if not present else []:
            leaked(child, by_name.get(child, []), run.gone.get(name), verdict)
        return
    status = (run.objects.get(name) or {}).get("status") or {}
    verdict.phases[name] = status.get("phase") or "none"
    parent_stuck = stuck(name, status, resource.suspended_at_end, verdict)
    for index, child in enumerate(children, 1):
        obj = run.objects.get(child)
        if obj is None:
            # expected only for shards the parent planned, and started (a suspended parent starts none)
            planned = index <= len(status.get("shards") or [])
            if planned and not (resource.suspended_at_end and status.get("phase") == "Suspended"):
                verdict.lost.append(f"{name}: (f) shard {index}: its resource {child} is missing")
            continue
        child_status = obj.get("status") or {}
        if not stuck(child, child_status, resource.suspended_at_end, verdict):
            rows = resource.shards[index - 1]
            lost(child, obj["metadata"]["uid"], child_status, by_name.get(child, []), rows, verdict)
    if not parent_stuck and status.get("phase") in TERMINAL:
        rolled_up(name, status, [run.objects.get(child) or {} for child in children], resource.rows, verdict)


def rolled_up(name: str, status: dict[str, Any], children: list[dict[str, Any]], rows: int, verdict: Verdict) -> None:
    problems = []
    if status.get("shardsDone") != f"{len(children)}/{len(children)}":
        problems.append(f"shardsDone {status.get('shardsDone')} of {len(children)} ended shards")
    for index, (entry, child) in enumerate(zip(status.get("shards") or [], children, strict=False), 1):
        seen = child.get("status") or {}
        job = ((seen.get("attempts") or [{}])[-1]).get("jobName")
        if entry.get("state") != seen.get("phase") or entry.get("job") != job:
            recorded = f"{entry.get('state')} {entry.get('job')}"
            problems.append(f"shard {index} recorded {recorded}, its child {seen.get('phase')} {job}")
    successful = sum(((c.get("status") or {}).get("completionStats") or {}).get("successful", 0) for c in children)
    if (status.get("completionStats") or {}).get("successful", 0) != successful:
        problems.append(f"completionStats {status.get('completionStats')}, the children's successful sum {successful}")
    # every shard succeeded: each child's output held its shard's rows (a failed shard may have none to read)
    if status.get("phase") == "Succeeded" and (status.get("usage") or {}).get("requests") != rows:
        problems.append(f"usage.requests {(status.get('usage') or {}).get('requests')}, input rows {rows}")
    # the parent's results manifest joined every input row once, over all shards
    if status.get("phase") == "Succeeded" and status.get("rows") != {
        "total": rows,
        "succeeded": rows,
        "failed": 0,
        "missing": 0,
    }:
        problems.append(f"rows {status.get('rows')}, input rows {rows} all succeeded")
    verdict.lost += [f"{name}: (f) {problem}" for problem in problems]


def stuck(name: str, status: dict[str, Any], suspended_at_end: bool, verdict: Verdict) -> bool:
    """Records why the resource is stuck, if it is; True when it is."""
    phase = status.get("phase")
    conditions = {c["type"]: c for c in status.get("conditions") or []}

    def true(kind: str) -> bool:
        condition = conditions.get(kind) or {}
        return condition.get("status") == "True" and bool(condition.get("reason"))

    if phase in TERMINAL:
        ok = true("Finished") and (true("Complete") if phase in ("Succeeded", "PartiallySucceeded") else true("Failed"))
        problem = None if ok else "terminal without Finished and Complete/Failed conditions"
    elif phase == "Suspended" and suspended_at_end:
        problem = None if true("Suspended") else "suspended without condition Suspended=True"
        if not held(status):
            problem = f"still suspending: its job's end is not recorded: {status.get('message')}"
    else:
        ready = conditions.get("Ready") or {}
        problem = f"not settled: phase {phase}, Ready {ready.get('reason')}: {status.get('message')}"
    if problem:
        verdict.stuck.append(f"{name}: {problem}")
    return problem is not None


def lost(name: str, uid: str, status: dict[str, Any], jobs: list[dict[str, Any]], rows: int, verdict: Verdict) -> None:
    problems = []
    by_name = {job["name"]: job for job in jobs}
    attempts = {a["attempt"]: a for a in status.get("attempts") or []}
    for number, attempt in sorted(attempts.items()):
        job_name = attempt.get("jobName")
        if job_name is None:
            continue
        job = by_name.get(job_name)
        if job is None:
            problems.append(f"(a) attempt {number} names {job_name}, which no job of uid {uid} is")
            continue
        if job["labels"].get("bij-attempt") != str(number):
            problems.append(f"(a) attempt {number} names {brief(job)}")
        if job["state"] not in VERTEX_TERMINAL or attempt.get("state") != job["state"]:
            problems.append(f"(c) attempt {number} records {attempt.get('state')}, Vertex has {brief(job)}")
            continue
        if job["startTime"] is not None:
            counted = attempt.get("rows")
            stats = job["completionStats"]
            recorded = attempt.get("completionStats") or {}
            if counted is None:
                problems.append(f"(d) attempt {number}: rows of {brief(job)} never counted")
            elif counted.get("succeeded", 0) != stats["successful"]:
                problems.append(f"(d) attempt {number}: rows.succeeded {counted.get('succeeded', 0)}, Vertex {stats}")
            if {k: recorded.get(k, 0) for k in stats} != stats:
                problems.append(f"(d) attempt {number}: completionStats {recorded}, Vertex {stats}")
    ran: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        if paid(job):
            ran[int(job["labels"].get("bij-attempt", "0"))].append(job)
    for number, group in sorted(ran.items()):
        if (attempts.get(number) or {}).get("jobName") not in {job["name"] for job in group}:
            problems.append(f"(b) attempt {number} ran as {brief(group[0])}, but status names none of its paid jobs")
    if status.get("phase") in ("Succeeded", "PartiallySucceeded"):
        usage = status.get("usage") or {}
        successful = (status.get("completionStats") or {}).get("successful", 0)
        if usage.get("requests") != rows or usage.get("succeeded") != successful:
            problems.append(
                f"(e) usage requests {usage.get('requests')} succeeded {usage.get('succeeded')}; "
                f"input rows {rows}, completionStats.successful {successful}"
            )
    verdict.lost += [f"{name}: {problem}" for problem in dict.fromkeys(problems)]


def leaked(name: str, jobs: list[dict[str, Any]], gone: datetime.datetime | None, verdict: Verdict) -> None:
    for job in jobs:
        states = {step["state"]: when(step["time"]) for step in job["timeline"]}
        late_run = gone is not None and states.get("JOB_STATE_RUNNING", gone) > gone
        end = when(job["timeline"][-1]["time"])
        uncancelled = (
            gone is not None and job["state"] in VERTEX_TERMINAL and "JOB_STATE_CANCELLING" not in states and end > gone
        )
        if job["state"] not in VERTEX_TERMINAL or late_run or uncancelled:
            verdict.leaked.append(f"{name} (gone at {gone and gone.isoformat()[11:23]}): {brief(job)}")
