"""A chaos trial's plan, drawn from a seed: the resources, the Vertex faults, the kills of the operator and
the spec changes (suspend, unsuspend, delete), each at a time or a trigger. Pure: the same seed gives the
same plan, so a failing trial is reproduced by its seed (the timing of a real run may still differ).

Times are seconds after the trial's resources were created. Every event lies within `WINDOW` seconds
(kills may wait up to `TRIGGER_WAIT` for their trigger, and are skipped when it never comes). The plan
ends when its events are done, and not before `WINDOW`: then faults off, the operator running.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The operator's settings for every trial: small, so a trial takes seconds. The settle window (4 s) is
# longer than the client timeout (1 s) plus the longest late create drawn (`LATE_CREATE`), as the
# operator's exactly-once rule needs (core/exactly_once.py).
OPERATOR_ENV = {
    "BIJ_VERTEX_TIMEOUT": "1",
    "BIJ_CREATE_SETTLE": "4",
    "BIJ_RETRY_BASE": "0.3",
    "BIJ_RETRY_MAX": "2",
    "BIJ_POLL_INTERVAL": "0.3",
    "BIJ_RECONCILE_INTERVAL": "0.2",
    "BIJ_FINALIZER_TIMEOUT": "20",
}
WINDOW = 4.0  # seconds in which the plan's events happen
LATE_CREATE = (1.3, 2.6)  # hang of a late create: above BIJ_VERTEX_TIMEOUT, below the settle window
TRIGGER_WAIT = 4.0  # how long a targeted kill waits for its trigger before it is skipped

# Fault kinds, as the summary table counts them.
API_KINDS = (
    "lost-create",  # the create is carried out, then answered 500/503/504 (the client never learns the job)
    "late-create",  # the create is held past the client's timeout, then carried out
    "flaky-create",  # 429/500/503 on a share of creates
    "flaky-get",
    "flaky-list",
    "slow-get",  # a share of gets hang past the client's timeout
    "slow-list",
    "flaky-cancel",
)
RESOURCE_KINDS = (
    "resume-failed",
    "vertex-cancelled",
    "partial",
    "row-errors",
    "suspend",
    "delete",
    "shared-prefix",
    "sharded",
)
KILL_TRIGGERS = ("uniform", "after-create", "after-status-write")
Trigger = Literal["uniform", "after-create", "after-status-write"]


@dataclass
class Kill:
    """SIGKILL the operator at `at` seconds (uniform), or right after the `nth` create the emulator saw
    or the `nth` status write of a trial resource (counted from the trial's start); start it again
    `restart_after` seconds later."""

    trigger: Trigger
    at: float = 0.0
    nth: int = 1
    restart_after: float = 0.0


@dataclass
class ResourcePlan:
    name: str
    rows: int
    backoff_seconds: int
    job_fault: dict[str, Any] | None = None  # an emulator job fault for this resource's first job
    suspend_at: float | None = None
    unsuspend_at: float | None = None  # None after a suspend: the plan leaves it suspended
    delete_at: float | None = None
    shards: list[int] = field(default_factory=list)  # a sharded resource: each shard's rows (one child each)

    @property
    def suspended_at_end(self) -> bool:
        return self.suspend_at is not None and self.unsuspend_at is None and self.delete_at is None


@dataclass
class Plan:
    seed: int
    namespace: str
    resources: list[ResourcePlan]
    shared_prefix: bool
    api_faults: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, emulator api fault)
    row_faults: list[dict[str, Any]] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    emulator: dict[str, float] = field(default_factory=dict)  # the emulator's pace (its config keys)
    kinds: list[str] = field(default_factory=list)  # the fault kinds in this plan

    def describe(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def max_hang(self) -> float:
        return max((float(f.get("hangSeconds", 0)) for _, f in self.api_faults), default=0.0)


def _api_fault(kind: str, rng: random.Random, fault_id: int) -> dict[str, Any]:
    """One emulator api fault; `seed` doubles as the fault's id (the control API reports what is left)."""
    rate = round(rng.uniform(0.3, 0.5), 2)
    if kind == "lost-create":
        code = rng.choice([500, 503, 504])
        hang = round(rng.uniform(0.05, 0.5), 2)
        return {"method": "create", "hangSeconds": hang, "code": code, "count": 1, "seed": fault_id}
    if kind == "late-create":
        hang = round(rng.uniform(*LATE_CREATE), 2)
        return {"method": "create", "hangSeconds": hang, "count": rng.randint(1, 2), "seed": fault_id}
    if kind.startswith("flaky-"):
        method = kind.removeprefix("flaky-")
        code = rng.choice([429, 500, 503])
        return {"method": method, "code": code, "rate": rate, "count": rng.randint(2, 6), "seed": fault_id}
    method = kind.removeprefix("slow-")
    hang = round(rng.uniform(1.1, 1.8), 2)
    return {"method": method, "hangSeconds": hang, "rate": rate, "count": rng.randint(1, 3), "seed": fault_id}


def draw(seed: int) -> Plan:
    rng = random.Random(seed)
    namespace = f"chaos-{seed}"
    count = rng.choice([1, 1, 2, 2, 3])
    shared = count >= 2 and rng.random() < 0.3
    stem = ("s" + "".join(rng.choice("abcdefghij") for _ in range(62)))[:63] if shared else ""
    resources = []
    for i in range(count):
        name = f"{stem}-{'ab'[i]}" if shared and i < 2 else f"job-{i}"
        resources.append(ResourcePlan(name, rng.randint(3, 25), rng.choice([0, 0, 1])))
    plan = Plan(seed, namespace, resources, shared, kinds=["shared-prefix"] if shared else [])
    for resource in resources:
        _resource_events(resource, f"{namespace}-{resource.name}", rng, plan.kinds)
    if rng.random() < 0.15:
        plan.row_faults = [{"code": rng.choice([429, 500]), "rate": 0.2, "seed": seed}]
        plan.kinds.append("row-errors")
    # Cancels happen only to suspend, delete or reap a duplicate: flaky cancels only where they may bite.
    cancels = any(r.suspend_at is not None or r.delete_at is not None for r in resources)
    pool = [kind for kind in API_KINDS if kind != "flaky-cancel" or cancels]
    kinds = sorted(rng.sample(pool, rng.choice([0, 1, 2, 2, 3, 3])))
    plan.api_faults = [(kind, _api_fault(kind, rng, seed * 100 + i)) for i, kind in enumerate(kinds)]
    plan.kinds += kinds
    for _ in range(rng.choice([0, 1, 1, 1, 2, 2])):
        trigger: Trigger = rng.choice(KILL_TRIGGERS)
        kill = Kill(trigger, restart_after=round(rng.uniform(0.0, 1.0), 2))
        if trigger == "uniform":
            kill.at = round(rng.uniform(0.0, WINDOW), 2)
        else:
            kill.nth = rng.randint(1, count if trigger == "after-create" else 4)
        plan.kills.append(kill)
    plan.emulator = {
        "queueSeconds": round(rng.uniform(0.1, 0.6), 2),
        "minRunSeconds": round(rng.uniform(0.2, 1.0), 2),
        "rowsPerSecond": rng.choice([0, 10, 30]),
        "cancellingSeconds": 0.3,
    }
    _shard(plan, random.Random(f"shards-{seed}"))
    plan.kinds = sorted(set(plan.kinds))
    return plan


def _shard(plan: Plan, rng: random.Random) -> None:
    """Some resources become sharded parents (2 or 3 shards, one child resource each). Drawn from an RNG
    of their own, so every other part of a seed's plan is what it was before shards existed. A job
    fault then hits the first matching shard's job (its display name is the child's)."""
    for resource in plan.resources:
        if (plan.shared_prefix and resource.name.endswith(("-a", "-b"))) or rng.random() >= 0.35:
            continue
        count = rng.choice([2, 3])
        resource.rows = max(resource.rows, count)
        per = -(-resource.rows // count)  # the splitter cuts in input order, `per` rows a shard
        count = -(-resource.rows // per)
        resource.shards = [per] * (count - 1) + [resource.rows - per * (count - 1)]
        if resource.job_fault is not None:
            resource.job_fault["match"] = {"displayName": f"{plan.namespace}-{resource.name}-shard-*"}
        plan.kinds.append("sharded")


def _resource_events(resource: ResourcePlan, display_name: str, rng: random.Random, kinds: list[str]) -> None:
    """A job fault for the resource's first Vertex job (so attempt 2 runs), suspend, unsuspend, delete."""
    if rng.random() < 0.45:
        outcome, kind = rng.choice(
            [("FAILED", "resume-failed"), ("CANCELLED", "vertex-cancelled"), ("PARTIALLY_SUCCEEDED", "partial")]
        )
        resource.job_fault = {
            "outcome": outcome,
            "afterFraction": round(rng.uniform(0.2, 0.8), 2),
            "match": {"displayName": display_name},
        }
        if outcome == "FAILED":
            resource.job_fault["code"] = 13
        kinds.append(kind)
    if rng.random() < 0.3:
        resource.suspend_at = round(rng.uniform(0.1, 2.5), 2)
        if rng.random() < 0.7:
            resource.unsuspend_at = round(resource.suspend_at + rng.uniform(0.3, 1.5), 2)
        kinds.append("suspend")
    if rng.random() < 0.2:
        resource.delete_at = round(rng.uniform(0.2, WINDOW - 0.5), 2)
        kinds.append("delete")
