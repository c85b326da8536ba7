"""The chaos verdict on made-up ends of trials: each measure counts what it says, and only that."""

from __future__ import annotations

import datetime
from typing import Any

from chaos_plan import Plan, ResourcePlan
from chaos_trial import Run
from chaos_verdict import judge

T0 = datetime.datetime(2026, 11, 29, 10, 0, tzinfo=datetime.UTC)
DONE = "JOB_STATE_SUCCEEDED"


def stamp(seconds: float) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job(number: int, attempt: int, states: list[str], rows: int = 4, uid: str = "u1") -> dict[str, Any]:
    ran = "JOB_STATE_RUNNING" in states
    return {
        "id": str(number),
        "name": f"projects/1/locations/us-central1/batchPredictionJobs/{number}",
        "state": states[-1],
        "labels": {"bij-uid": uid, "bij-attempt": str(attempt)},
        "timeline": [{"state": state, "time": stamp(number + i)} for i, state in enumerate(states)],
        "rows": {"processed": rows if ran else 0, "carried": 0},
        "startTime": stamp(number) if ran else None,
        "completionStats": {"successful": rows if ran else 0, "failed": 0, "incomplete": 0},
    }


def succeeded(*jobs: dict[str, Any], rows: int = 4) -> dict[str, Any]:
    attempts = [
        {
            "attempt": int(j["labels"]["bij-attempt"]),
            "jobName": j["name"],
            "state": j["state"],
            "rows": {"succeeded": j["completionStats"]["successful"]},
            "completionStats": j["completionStats"],
        }
        for j in jobs
    ]
    conditions = [{"type": kind, "status": "True", "reason": "Succeeded"} for kind in ("Finished", "Complete")]
    return {
        "metadata": {"uid": "u1"},
        "status": {
            "phase": "Succeeded",
            "attempts": attempts,
            "conditions": conditions,
            "completionStats": {"successful": rows},
            "usage": {"requests": rows, "succeeded": rows},
        },
    }


def run_of(jobs: list[dict[str, Any]], obj: dict[str, Any] | None, **resource: Any) -> Run:
    plan = Plan(1, "chaos-1", [ResourcePlan("job-0", 4, 0, **resource)], False)
    return Run(plan, uids={"job-0": "u1"}, jobs=jobs, objects={"job-0": obj})


RAN = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", DONE]


def test_a_clean_end_is_judged_clean() -> None:
    first = job(1, 1, RAN)
    verdict = judge(run_of([first], succeeded(first)))
    assert not verdict.failed and verdict.phases == {"job-0": "Succeeded"}


def test_two_paid_jobs_of_one_attempt_are_a_duplicate_but_one_cancelled_before_it_ran_is_not() -> None:
    first, second = job(1, 1, RAN), job(2, 1, RAN)
    assert len(judge(run_of([first, second], succeeded(first))).duplicates) == 1
    early = job(3, 1, ["JOB_STATE_PENDING", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"])
    assert not judge(run_of([first, early], succeeded(first))).failed


def test_a_status_that_misses_a_job_that_ran_or_its_rows_is_lost() -> None:
    first, unpaid = job(1, 1, RAN), job(2, 1, ["JOB_STATE_PENDING", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"])
    assert [item[:12] for item in judge(run_of([first, unpaid], succeeded(unpaid))).lost] == ["job-0: (b) a"]
    assert "(a)" in judge(run_of([], succeeded(first))).lost[0]
    uncounted = succeeded(first)
    del uncounted["status"]["attempts"][0]["rows"]
    assert "(d)" in judge(run_of([first], uncounted)).lost[0]
    short = succeeded(first, rows=3)
    assert "(e)" in judge(run_of([first], short)).lost[0]


def test_unsettled_or_unexplained_ends_are_stuck() -> None:
    first = job(1, 1, RAN)
    running = succeeded(first)
    running["status"]["phase"] = "Running"
    assert "not settled" in judge(run_of([first], running)).stuck[0]
    silent = succeeded(first)
    silent["status"]["conditions"] = []
    assert "terminal without" in judge(run_of([first], silent)).stuck[0]
    held = succeeded(first)
    held["status"].update(phase="Suspended", conditions=[{"type": "Suspended", "status": "True", "reason": "S"}])
    assert not judge(run_of([first], held, suspend_at=1.0)).stuck, "left suspended by the plan"
    assert judge(run_of([first], held, suspend_at=1.0, unsuspend_at=2.0)).stuck, "the plan unsuspended it"


def test_a_deleted_resource_whose_job_runs_on_has_leaked() -> None:
    late = job(5, 1, RAN)  # RUNNING at T0+6s
    run = run_of([late], None, delete_at=1.0)
    run.gone["job-0"] = T0 + datetime.timedelta(seconds=3)
    verdict = judge(run)
    assert len(verdict.leaked) == 1 and verdict.phases == {"job-0": "deleted"}
    run.gone["job-0"] = T0 + datetime.timedelta(seconds=30)
    assert not judge(run).failed, "it ended before the resource was gone"
    run.objects["job-0"] = succeeded(late)
    assert "still present" in judge(run).stuck[0]


def sharded_run(jobs: list[dict[str, Any]]) -> Run:
    """job-0 sharded in two; each child's status names its one job; the parent rolled them up."""
    children = {}
    for child, uid in (("job-0-shard-00001", "c1"), ("job-0-shard-00002", "c2")):
        mine = [j for j in jobs if j["labels"]["bij-uid"] == uid]
        body = succeeded(*mine[:1], rows=2)
        body["metadata"]["uid"] = uid
        children[child] = body
    parent = succeeded(rows=4)
    parent["status"].update(
        attempts=[],
        shardsDone="2/2",
        rows={"total": 4, "succeeded": 4, "failed": 0, "missing": 0},
        shards=[
            {"index": i, "state": "Succeeded", "job": c["status"]["attempts"][0]["jobName"]}
            for i, c in enumerate(children.values(), 1)
        ],
    )
    plan = Plan(1, "chaos-1", [ResourcePlan("job-0", 4, 0, shards=[2, 2])], False)
    objects = {"job-0": parent, **children}
    return Run(plan, uids={"job-0": "u1"}, jobs=jobs, objects=objects, children={"job-0": list(children)})


def shard_job(number: int, index: int, uid: str, states: list[str] = RAN) -> dict[str, Any]:
    made = job(number, 1, states, rows=2, uid=uid)
    made["labels"].update({"bij-name": f"job-0-shard-{index:05d}", "bij-shard": f"{index:05d}"})
    return made


def test_a_sharded_resource_is_judged_by_its_children_and_its_roll_up() -> None:
    jobs = [shard_job(1, 1, "c1"), shard_job(2, 2, "c2")]
    assert not judge(sharded_run(jobs)).failed
    unjoined = sharded_run(jobs)
    unjoined.objects["job-0"]["status"]["rows"]["missing"] = 1
    assert judge(unjoined).lost == [
        "job-0: (f) rows {'total': 4, 'succeeded': 4, 'failed': 0, 'missing': 1}, input rows 4 all succeeded"
    ]
    # a second paid job for shard 1's attempt 1, from another child object of the same name
    twice = judge(sharded_run([*jobs, shard_job(3, 1, "c9")]))
    assert [item[:22] for item in twice.duplicates] == ["job-0 shard 1 attempt "]
    own = job(4, 1, RAN, uid="u1")
    assert "jobs of its own" in judge(sharded_run([*jobs, own])).duplicates[0]
    unlabelled = shard_job(1, 1, "c1")
    del unlabelled["labels"]["bij-shard"]
    assert "without bij-shard 00001" in judge(sharded_run([unlabelled, jobs[1]])).lost[0]
    run = sharded_run(jobs)
    run.objects["job-0"]["status"]["completionStats"] = {"successful": 3}
    assert "(f) completionStats" in judge(run).lost[0]
