"""A sharded resource is a parent: one child BatchInferenceJob per shard of its input, and one status
rolled up from theirs. Pure: the children's specs and the rollup are decided here; the controller only
creates and patches what this returns (controller/parents.py).

Each child runs its shard with the whole single-job machinery (exactly-once submit, resume, suspend,
delete -> Cancel), so a shard failing half-way is resumed alone. The parent never creates a Vertex job.
Children are named `<parent>-shard-00001` (created idempotently by name), owned by the parent
(ownerReferences: deleting the parent deletes them), and labelled with the parent's name and their
index; their Vertex jobs carry `bij-shard` (core/identity.operator_labels).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from ..api import TERMINAL_PHASES, BatchInferenceJobSpec, BatchInferenceJobStatus, CompletionStats, Shard, Usage
from ..api.meta import GROUP, KIND, SHARD_INDEX_LABEL, SHARD_OF_LABEL, VERSION
from .actions import Event, WriteManifest
from .conditions import set_condition
from .identity import Resource
from .ledger import Shard as LedgerShard
from .manifest import final_output, manifest_for_shards
from .parent_rerun import annotations, take_parent_rerun
from .record import phase_event
from .uris import BigQueryUri, is_bigquery
from .wording import plural

SHARD_DIGITS = 5
NAME_MAX = 63  # a child's name stays a DNS label, as the design asks (a Vertex label value holds it whole)
_DIGEST = 8
# Spec fields that concern the parent only: a child has no shards of its own, and is deleted with its
# parent (its own TTL could delete it before the parent has rolled it up, and it would be made again);
# the cost limit was checked against the whole input before any shard was written.
PARENT_ONLY = ("sharding", "ttlSecondsAfterFinished", "maxEstimatedCostUSD")
# A parent's phase while children live: the most advanced phase among them, in this order.
LIVE_ORDER = ("Running", "Resuming", "Paused", "Cancelling", "Unknown", "Pending", "Queued", "Suspended")
BAD_ENDINGS = {"Failed": "ShardFailed", "Cancelled": "ShardCancelled", "PartiallySucceeded": "ShardPartiallySucceeded"}


def shard_key(index: int) -> str:
    """A shard's index as written in names and labels: "00001"."""
    return f"{index:0{SHARD_DIGITS}d}"


def _shortened(name: str, room: int) -> str:
    """`name` when it fits in `room` characters; else its start and a hash of the whole name, so two long
    names sharing their start never share the result."""
    if len(name) <= room:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST]
    return f"{name[: room - _DIGEST - 1].rstrip('-.')}-{digest}"


def child_name(parent: str, index: int) -> str:
    suffix = f"-shard-{shard_key(index)}"
    return _shortened(parent, NAME_MAX - len(suffix)) + suffix


def parent_label(parent: str) -> str:
    """The parent's name as a Kubernetes label value (at most 63 characters)."""
    return _shortened(parent, NAME_MAX)


@dataclass(frozen=True)
class Child:
    """A child resource as its parent sees it (the operator's index of children, by owner uid)."""

    name: str
    uid: str
    index: int
    suspend: bool
    deletion_policy: str
    status: BatchInferenceJobStatus


@dataclass
class ParentDecision:
    status: BatchInferenceJobStatus
    create: list[dict[str, Any]] = field(default_factory=list)  # child objects to create
    update: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (child name, merge patch)
    events: list[Event] = field(default_factory=list)
    manifest: WriteManifest | None = None  # every shard ended: the results manifest to write before finishing


def child_spec(spec: dict[str, Any], shard: Shard) -> dict[str, Any]:
    """The parent's spec (wire form) for one shard: its input, its own output, no sharding."""
    key = shard_key(shard.index)
    child = {name: value for name, value in spec.items() if name not in PARENT_ONLY}
    kind = {name: value for name, value in spec["input"].items() if name not in ("gcs", "bigquery")}
    if shard.input and is_bigquery(shard.input[0]):
        kind["bigquery"] = {"table": shard.input[0]}
    else:
        kind["gcs"] = {"uris": list(shard.input)}
    child["input"] = kind
    output = spec["output"]
    if "gcs" in output:
        prefix = output["gcs"]["uriPrefix"].rstrip("/")
        child["output"] = {"gcs": {"uriPrefix": f"{prefix}/shards/output-{key}/"}}
    else:  # one table per Vertex job, in the parent's dataset: shards never write to one table
        target = output["bigquery"]
        dataset = target.get("dataset") or BigQueryUri.parse(target["table"]).dataset_uri
        child["output"] = {"bigquery": {"dataset": dataset}}
    if spec.get("displayName"):
        suffix = f" shard {key}"
        child["displayName"] = spec["displayName"][: 128 - len(suffix)] + suffix
    return child


def child_body(parent: Resource, spec: dict[str, Any], shard: Shard) -> dict[str, Any]:
    """The child object to create: owned by the parent, labelled with its name and the shard's index."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": child_name(parent.name, shard.index),
            "namespace": parent.namespace,
            "labels": {SHARD_OF_LABEL: parent_label(parent.name), SHARD_INDEX_LABEL: shard_key(shard.index)},
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": parent.name,
                    "uid": parent.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": child_spec(spec, shard),
    }


def decide_parent(
    spec: BatchInferenceJobSpec,
    wire: dict[str, Any],
    status: BatchInferenceJobStatus,
    parent: Resource,
    children: Sequence[Child],
    taken: Collection[str],
    now: datetime.datetime,
) -> ParentDecision:
    """Children to create or update, and the parent's rolled-up status. `taken`: names of the namespace's
    other resources (not children of this parent): a shard's name held by one is a conflict, said so."""
    status = status.model_copy(deep=True)
    status.observed_generation = parent.generation
    rerun_events = take_parent_rerun(status, parent.rerun, now, parent.generation) or []
    if status.phase in TERMINAL_PHASES:
        return ParentDecision(status, events=rerun_events)
    previous = status.phase
    status.start_time = status.start_time or now
    decision = ParentDecision(status, events=rerun_events)
    by_index = {child.index: child for child in children}
    conflicts = []
    for shard in status.shards:
        shard.resource = child_name(parent.name, shard.index)
        child = by_index.get(shard.index)
        if child is None:
            if shard.resource in taken:
                conflicts.append(shard.resource)
            elif not spec.suspend:  # a suspended parent starts no shard: nothing to hold but the plan
                decision.create.append(child_body(parent, wire, shard))
            continue
        patch: dict[str, Any] = {}
        if child.suspend != spec.suspend:
            patch["suspend"] = spec.suspend
        if child.deletion_policy != spec.deletion_policy:
            patch["deletionPolicy"] = spec.deletion_policy
        if patch:
            decision.update.append((child.name, {"spec": patch}))
        _follow(shard, child, decision.events)
    decision.update += annotations(status, children, parent.rerun)
    if status.rerun is not None and status.rerun.state == "Pending":  # until the chosen shards took it
        status.shards_done = f"{sum(1 for s in status.shards if s.state in TERMINAL_PHASES)}/{len(status.shards)}"
        return decision
    status.usage = sum_usage([c.status.usage for c in children if c.status.usage is not None]) or status.usage
    _roll_up(spec, status, conflicts, now, parent.generation)
    if status.phase not in TERMINAL_PHASES and _all_ended(status) and not conflicts:
        decision.manifest = _manifest(spec, status, by_index, parent.name)
    phase_event(previous, status, decision.events)
    return decision


def _all_ended(status: BatchInferenceJobStatus) -> bool:
    return bool(status.shards) and all(shard.state in TERMINAL_PHASES for shard in status.shards)


def _manifest(
    spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus, children: dict[int, Child], name: str
) -> WriteManifest | None:
    """Every shard ended: one manifest over all of them (each shard's input joined to its child's final
    output) is written before the parent's final phase, so a failed write is tried again; None once written."""
    if status.rows is not None:
        return None
    shards = [
        LedgerShard(shard.index, tuple(shard.input), final_output(children[shard.index].status))
        for shard in status.shards
    ]
    write = manifest_for_shards(spec, status, shards, name)
    status.message = f"all {plural(len(shards), 'shard')} ended; writing the results manifest {write.uri}"
    return write


def _follow(shard: Shard, child: Child, events: list[Event]) -> None:
    """Mirror a child into its shard's entry; one Event when a shard ends badly (not one per turn)."""
    seen = child.status
    before = shard.state
    shard.state = seen.phase
    shard.job = seen.job.name if seen.job and seen.job.name else (seen.attempts[-1].job_name if seen.attempts else None)
    shard.attempts = seen.attempt
    shard.completion_stats = seen.completion_stats
    if shard.state in BAD_ENDINGS and before != shard.state:
        kind: Literal["Normal", "Warning"] = "Normal" if shard.state == "PartiallySucceeded" else "Warning"
        message = f"shard {shard_key(shard.index)} ({child.name}): {seen.message}"
        events.append(Event(kind, BAD_ENDINGS[shard.state], message))


def _roll_up(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    conflicts: list[str],
    now: datetime.datetime,
    generation: int,
) -> None:
    shards = status.shards
    states = [shard.state for shard in shards]
    done = sum(1 for state in states if state in TERMINAL_PHASES)
    status.shards_done = f"{done}/{len(shards)}"
    status.completion_stats = sum_stats([s.completion_stats for s in shards if s.completion_stats is not None])
    if conflicts:
        status.phase = "Pending"
        status.message = (
            f"{plural(len(conflicts), 'shard')} cannot start: BatchInferenceJob {', '.join(conflicts)} exists and "
            "is not a shard of this resource; delete or rename it"
        )
        set_condition(status, "Ready", False, "ShardNameTaken", status.message, now, generation)
        return
    if spec.suspend and all(state in (None, "Suspended") for state in states):
        status.phase = "Suspended"
        status.message = (
            f"suspended: {plural(len(shards), 'shard')} held ({sum(s is None for s in states)} not started); "
            "set spec.suspend to false to run them"
        )
        set_condition(status, "Suspended", True, "Suspended", status.message, now, generation)
        set_condition(status, "Ready", False, "Suspended", status.message, now, generation)
        return
    if any(state is None for state in states):
        status.phase = "Pending"
        status.message = f"starting {plural(len(shards), 'shard')}: {sum(s is not None for s in states)} started"
        set_condition(status, "Ready", False, "Pending", status.message, now, generation)
        return
    if done < len(shards):
        live = [state for state in states if state not in TERMINAL_PHASES]
        status.phase = next(phase for phase in LIVE_ORDER if phase in live)  # type: ignore[assignment]
        counted = ", ".join(f"{live.count(phase)} {phase}" for phase in LIVE_ORDER if phase in live)
        status.message = f"{done} of {plural(len(shards), 'shard')} finished; {counted}"
        set_condition(status, "Ready", False, status.phase or "", status.message, now, generation)
        suspended = spec.suspend and all(state == "Suspended" for state in live)
        set_condition(status, "Suspended", suspended, "Suspended" if suspended else "NotSuspended", "", now, generation)
        return
    if status.rows is not None:  # the manifest is written (or could not be): the parent finishes
        _finish(status, now, generation)


def _finish(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> None:
    """Every shard ended: Succeeded when all did; PartiallySucceeded when some rows succeeded; else Failed."""
    shards = status.shards
    good = sum(1 for shard in shards if shard.state == "Succeeded")
    succeeded_rows = status.completion_stats.successful if status.completion_stats else 0
    if good == len(shards):
        status.phase = "Succeeded"
    elif succeeded_rows or good:
        status.phase = "PartiallySucceeded"
    else:
        status.phase = "Failed"
    bad = [f"shard {shard_key(s.index)} {s.state}" for s in shards if s.state != "Succeeded"]
    status.message = f"{good} of {plural(len(shards), 'shard')} succeeded, {plural(succeeded_rows, 'request')} in all"
    status.message += f" ({', '.join(bad)})" if bad else ""
    status.completion_time = status.completion_time or now
    phase = status.phase
    if phase == "Failed":
        reason = "NoRequestSucceeded" if not succeeded_rows else "ShardsFailed"
        set_condition(status, "Failed", True, reason, status.message, now, generation)
        set_condition(status, "Complete", False, reason, status.message, now, generation)
        set_condition(status, "Ready", False, reason, status.message, now, generation)
    else:
        set_condition(status, "Complete", True, phase, status.message, now, generation)
        set_condition(status, "Failed", False, phase, "", now, generation)
        set_condition(status, "Ready", True, phase, status.message, now, generation)
    set_condition(status, "Finished", True, phase, status.message, now, generation)


def sum_stats(stats: Sequence[CompletionStats]) -> CompletionStats | None:
    if not stats:
        return None
    return CompletionStats(
        successful=sum(s.successful for s in stats),
        failed=sum(s.failed for s in stats),
        incomplete=sum(s.incomplete for s in stats),
    )


_SUMMED = (
    "requests",
    "succeeded",
    "failed",
    "prompt_tokens",
    "cached_tokens",
    "candidates_tokens",
    "thoughts_tokens",
    "total_tokens",
    "unreadable_rows",
)


def sum_usage(usages: Sequence[Usage]) -> Usage | None:
    """The shards' usage added up; the cost too, when every shard's is known (a model without a price
    has none), and the cache ratio recomputed from the sums, not averaged."""
    if not usages:
        return None
    total = Usage(**{name: sum(getattr(u, name) for u in usages) for name in _SUMMED})
    total.cache_hit_ratio = round(total.cached_tokens / total.prompt_tokens, 4) if total.prompt_tokens else 0.0
    if all(u.estimated_cost_usd is not None for u in usages):
        total.estimated_cost_usd = str(sum((Decimal(u.estimated_cost_usd or "0") for u in usages), Decimal("0")))
    return total
