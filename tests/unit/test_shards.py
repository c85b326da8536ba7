"""A sharded parent, decided with values: its children's names and specs, and the status rolled up from theirs."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from batch_inference_operator import api
from batch_inference_operator.api.meta import LABEL_SHARD, RERUN_ANNOTATION, SHARD_INDEX_LABEL, SHARD_OF_LABEL
from batch_inference_operator.core.identity import Resource, operator_labels
from batch_inference_operator.core.rerun import digest as rerun_digest
from batch_inference_operator.core.shards import Child, child_name, child_spec, decide_parent, parent_label, sum_usage

T0 = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC)
PARENT = Resource("team-a", "reviews", "parent-uid", generation=2)
WIRE: dict[str, Any] = {
    "model": "gemini-2.5-flash",
    "project": "demo-project",
    "location": "us-central1",
    "input": {"gcs": {"uris": ["gs://in-bucket/big.jsonl"]}},
    "output": {"gcs": {"uriPrefix": "gs://out-bucket/results"}},
    "labels": {"team": "search"},
    "ttlSecondsAfterFinished": 60,
}


def planned(count: int = 3) -> api.BatchInferenceJobStatus:
    shards = [
        api.Shard(index=i, input=[f"gs://out-bucket/results/shards/input-{i:05d}.jsonl"], rows=10, bytes=1000)
        for i in range(1, count + 1)
    ]
    return api.BatchInferenceJobStatus(phase="Pending", shards=shards)


def child(index: int, phase: str | None, successful: int = 0, failed: int = 0, **status: Any) -> Child:
    seen = api.BatchInferenceJobStatus(
        phase=phase,
        attempt=status.pop("attempt", 1),
        completion_stats=api.CompletionStats(successful=successful, failed=failed),
        job=api.JobRef(name=f"projects/1/locations/us-central1/batchPredictionJobs/{index}"),
        message=status.pop("message", f"shard {index} says hello"),
        **status,
    )
    return Child(child_name("reviews", index), f"child-{index}", index, False, "Cancel", seen)


def decide(status: api.BatchInferenceJobStatus, children: list[Child], **spec: Any) -> Any:
    """As the controller does: when every shard ended, the manifest is written (here: its row totals
    recorded) and the parent decided again, which then finishes."""
    wire = {**WIRE, **spec}
    decision = decide_parent(api.parse_spec(wire), wire, status, PARENT, children, frozenset(), T0)
    if decision.manifest is None:
        return decision
    assert decision.status.phase not in api.TERMINAL_PHASES, "never final before the manifest is written"
    written = decision.status.model_copy(deep=True)
    written.rows, written.manifest = api.RowTotals(total=1), decision.manifest.uri
    final = decide_parent(api.parse_spec(wire), wire, written, PARENT, children, frozenset(), T0)
    return dataclasses.replace(final, events=decision.events + final.events)


def test_when_every_shard_ended_one_manifest_joins_each_shards_input_to_its_childs_last_output() -> None:
    def read(index: int, attempts: int) -> list[api.Attempt]:
        out = f"gs://out-bucket/results/shards/output-{index:05d}/prediction-{{}}"
        return [
            api.Attempt(attempt=n, output_location=out.format(n), rows=api.RowCounts()) for n in range(1, attempts + 1)
        ]

    children = [child(1, "Succeeded", 10, attempts=read(1, 1)), child(2, "Succeeded", 10, attempts=read(2, 2))]
    wire = dict(WIRE)
    decision = decide_parent(api.parse_spec(wire), wire, planned(2), PARENT, children, frozenset(), T0)
    assert decision.manifest is not None and decision.status.phase not in api.TERMINAL_PHASES
    assert decision.manifest.uri == "gs://out-bucket/results/results-manifest.jsonl"
    assert [(s.index, s.inputs, s.output) for s in decision.manifest.shards] == [
        (
            1,
            ("gs://out-bucket/results/shards/input-00001.jsonl",),
            children[0].status.attempts[0].output_location + "/predictions.jsonl",
        ),
        (
            2,
            ("gs://out-bucket/results/shards/input-00002.jsonl",),
            children[1].status.attempts[1].output_location + "/predictions.jsonl",
        ),
    ]
    live = decide_parent(api.parse_spec(wire), wire, planned(2), PARENT, children[:1], frozenset(), T0)
    assert live.manifest is None, "not while a shard is still to start"


def test_children_are_named_by_index_and_stay_dns_labels() -> None:
    assert child_name("reviews", 1) == "reviews-shard-00001"
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    names = {child_name(long_a, 7), child_name(long_b, 7)}
    assert len(names) == 2 and all(len(n) <= 63 and n.endswith("-shard-00007") for n in names)
    assert len(parent_label("x" * 200)) == 63 and parent_label("reviews") == "reviews"


def test_the_first_turn_creates_one_owned_child_per_shard() -> None:
    decision = decide(planned(), [])
    assert [body["metadata"]["name"] for body in decision.create] == [
        "reviews-shard-00001",
        "reviews-shard-00002",
        "reviews-shard-00003",
    ]
    body = decision.create[1]
    assert body["metadata"]["labels"] == {SHARD_OF_LABEL: "reviews", SHARD_INDEX_LABEL: "00002"}
    [owner] = body["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "batchinference.dev/v1alpha1",
        "kind": "BatchInferenceJob",
        "name": "reviews",
        "uid": "parent-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    spec = body["spec"]
    assert spec["input"] == {"gcs": {"uris": ["gs://out-bucket/results/shards/input-00002.jsonl"]}}
    assert spec["output"] == {"gcs": {"uriPrefix": "gs://out-bucket/results/shards/output-00002/"}}
    assert "ttlSecondsAfterFinished" not in spec and spec["labels"] == {"team": "search"}
    api.parse_spec(spec)  # a valid spec: the API server would accept it
    assert decision.status.phase == "Pending" and decision.status.shards_done == "0/3"
    assert [s.resource for s in decision.status.shards] == [b["metadata"]["name"] for b in decision.create]


def test_a_bigquery_child_reads_its_shard_table_and_writes_to_the_parents_dataset() -> None:
    shard = api.Shard(index=4, input=["bq://proj-a.d.reviews_shard_00004"])
    wire = {
        **WIRE,
        "input": {"bigquery": {"table": "bq://proj-a.d.reviews"}},
        "output": {"bigquery": {"table": "bq://proj-a.o.t"}},
    }
    spec = child_spec(wire, shard)
    assert spec["input"] == {"bigquery": {"table": "bq://proj-a.d.reviews_shard_00004"}}
    assert spec["output"] == {"bigquery": {"dataset": "bq://proj-a.o"}}
    assert child_spec({**wire, "displayName": "nightly"}, shard)["displayName"] == "nightly shard 00004"


def test_a_shards_vertex_jobs_carry_its_index() -> None:
    labels = operator_labels(Resource("team-a", "reviews-shard-00002", "u", shard="00002"), 1, "hash")
    assert labels[LABEL_SHARD] == "00002"
    assert LABEL_SHARD not in operator_labels(Resource("team-a", "reviews", "u"), 1, "hash")


def test_existing_children_are_not_created_again_and_a_taken_name_is_a_conflict() -> None:
    wire = dict(WIRE)
    decision = decide_parent(
        api.parse_spec(wire), wire, planned(), PARENT, [child(1, "Running")], {"reviews-shard-00002"}, T0
    )
    assert [body["metadata"]["name"] for body in decision.create] == ["reviews-shard-00003"]
    assert decision.status.phase == "Pending"
    assert "reviews-shard-00002 exists and is not a shard of this resource" in (decision.status.message or "")


def test_while_children_live_the_parent_shows_the_most_advanced_phase_and_their_counts() -> None:
    decision = decide(planned(), [child(1, "Succeeded", 10), child(2, "Running", 4), child(3, "Queued")])
    status = decision.status
    assert status.phase == "Running" and status.shards_done == "1/3"
    assert status.message == "1 of 3 shards finished; 1 Running, 1 Queued"
    assert status.completion_stats == api.CompletionStats(successful=14, failed=0)
    assert [s.state for s in status.shards] == ["Succeeded", "Running", "Queued"]
    assert status.shards[1].job == "projects/1/locations/us-central1/batchPredictionJobs/2"
    assert not decision.create and ("Normal", "Running") in [(e.type, e.reason) for e in decision.events]


def test_all_succeeded_sums_counts_usage_and_cost() -> None:
    usage = [
        api.Usage(requests=10, succeeded=10, prompt_tokens=100, cached_tokens=50, estimated_cost_usd="0.0100"),
        api.Usage(requests=5, succeeded=5, prompt_tokens=300, cached_tokens=50, estimated_cost_usd="0.0250"),
    ]
    children = [child(1, "Succeeded", 10, usage=usage[0]), child(2, "Succeeded", 5, attempt=2, usage=usage[1])]
    status = decide(planned(2), children).status
    assert status.phase == "Succeeded" and status.shards_done == "2/2"
    assert status.completion_stats == api.CompletionStats(successful=15)
    assert status.usage is not None and status.usage.requests == 15 and status.usage.prompt_tokens == 400
    assert status.usage.estimated_cost_usd == "0.0350" and status.usage.cache_hit_ratio == 0.25
    assert status.shards[1].attempts == 2
    assert {c.type: c.status for c in status.conditions}["Complete"] == "True"
    assert status.completion_time == T0


def test_cost_is_unknown_when_any_shard_has_none() -> None:
    total = sum_usage([api.Usage(estimated_cost_usd="1.0"), api.Usage()])
    assert total is not None and total.estimated_cost_usd is None


def test_a_shard_ending_badly_posts_one_event_and_the_parent_ends_partially() -> None:
    running = decide(planned(2), [child(1, "Succeeded", 10), child(2, "Running")]).status
    children = [child(1, "Succeeded", 10), child(2, "Failed", 0, 10, message="quota")]
    first = decide(running, children)
    assert first.status.phase == "PartiallySucceeded"
    assert first.status.message == "1 of 2 shards succeeded, 10 requests in all (shard 00002 Failed)"
    assert ("Warning", "ShardFailed", "shard 00002 (reviews-shard-00002): quota") in [
        (e.type, e.reason, e.message) for e in first.events
    ]
    # finished: nothing more is decided, no Event again
    again = decide(first.status, children)
    assert again.events == [] and again.status.phase == "PartiallySucceeded"


def test_no_row_succeeded_in_any_shard_is_failed() -> None:
    status = decide(planned(2), [child(1, "Failed", 0, 3), child(2, "Cancelled")]).status
    assert status.phase == "Failed"
    assert {c.type: c.reason for c in status.conditions}["Failed"] == "NoRequestSucceeded"


def test_suspend_and_deletion_policy_reach_the_children() -> None:
    children = [child(1, "Running"), child(2, "Suspended")]
    decision = decide(planned(2), children, suspend=True, deletionPolicy="Abandon")
    assert decision.update == [
        ("reviews-shard-00001", {"spec": {"suspend": True, "deletionPolicy": "Abandon"}}),
        ("reviews-shard-00002", {"spec": {"suspend": True, "deletionPolicy": "Abandon"}}),
    ]
    suspended = [Child(c.name, c.uid, c.index, True, "Cancel", c.status) for c in children]
    assert decide(planned(2), suspended, suspend=True).update == []
    all_held = [
        Child(c.name, c.uid, c.index, True, "Cancel", c.status.model_copy(update={"phase": "Suspended"}))
        for c in children
    ]
    status = decide(planned(2), all_held, suspend=True).status
    assert status.phase == "Suspended" and {c.type: c.status for c in status.conditions}["Suspended"] == "True"


def test_a_status_with_a_shard_plan_is_never_submitted_as_one_job() -> None:
    """Preflight records the plan, and the same turn decides again: nothing may submit the whole input."""
    from batch_inference_operator.core.decide import decide as decide_single
    from batch_inference_operator.core.policy import Tenancy

    spec = api.parse_spec({**WIRE, "preflight": "Disabled"})
    decision = decide_single(spec, planned(), None, PARENT, Tenancy("p", "us-central1"), T0)
    assert decision.actions == [] and decision.status.attempts == []


def test_the_index_of_children_takes_only_shards_controlled_by_a_batch_inference_job() -> None:
    from batch_inference_operator.controller.parents import as_child, family_of, owner_uid

    ref = {"apiVersion": "batchinference.dev/v1alpha1", "kind": "BatchInferenceJob", "uid": "p", "controller": True}
    assert owner_uid({"ownerReferences": [ref]}) == "p"
    assert owner_uid({"ownerReferences": [{**ref, "controller": False}]}) is None
    assert owner_uid({"ownerReferences": [{**ref, "apiVersion": "batch/v1", "kind": "Job"}]}) is None
    meta = {"labels": {SHARD_INDEX_LABEL: "00003"}}
    seen = as_child("x-shard-00003", "u", meta, {"suspend": True}, {"phase": "Running", "kopf": {"x": 1}})
    assert seen is not None and (seen.index, seen.suspend, seen.deletion_policy) == (3, True, "Cancel")
    assert seen.status.phase == "Running"
    assert as_child("x", "u", {"labels": {}}, {}, {}) is None
    odd = as_child("x-shard-00001", "u", {"labels": {SHARD_INDEX_LABEL: "1"}}, {}, {"phase": "Sideways"})
    assert odd is not None and odd.status.phase is None, "a status this version cannot read shows as not started"
    family = family_of([seen], ["x-shard-00003", "other", "x-shard-00001"])
    assert family.taken == {"other", "x-shard-00001"}


def test_a_suspended_parent_starts_no_shard_and_says_so() -> None:
    decision = decide(planned(3), [], suspend=True)
    assert decision.create == [] and decision.status.phase == "Suspended"
    assert "3 shards held (3 not started)" in (decision.status.message or "")
    resumed = decide(decision.status, [])
    assert len(resumed.create) == 3 and resumed.status.phase == "Pending"


def rerun_parent(value: str) -> Resource:
    return dataclasses.replace(PARENT, rerun=value)


def took(one: Child, value: str, phase: str) -> Child:
    """The child after it acted on the re-run value (core/rerun.py records its digest)."""
    seen = one.status.model_copy(deep=True)
    seen.rerun = api.Rerun(value=value, time=T0, state="Started", seen=[rerun_digest(value)])
    seen.phase = phase
    return dataclasses.replace(one, status=seen)


def test_a_finished_parents_rerun_reaches_only_its_unfinished_shards_and_waits_for_them() -> None:
    wire = dict(WIRE)
    children = [child(1, "Succeeded", 10), child(2, "Failed", 0, 10, message="quota")]
    ended = decide(planned(2), children).status
    assert ended.phase == "PartiallySucceeded" and ended.rows is not None

    def turn(status: api.BatchInferenceJobStatus, kids: list[Child], value: str = "again-1") -> Any:
        return decide_parent(api.parse_spec(wire), wire, status, rerun_parent(value), kids, frozenset(), T0)

    first = turn(ended, children)
    assert first.status.phase == "Pending" and first.status.rows is None and first.status.manifest is None
    assert ("Normal", "Rerun") in [(e.type, e.reason) for e in first.events]
    assert first.update == [("reviews-shard-00002", {"metadata": {"annotations": {RERUN_ANNOTATION: "again-1"}}})]
    assert first.manifest is None, "the shards are still the finished ones: no roll-up to an end yet"
    again = turn(first.status, children)
    assert again.status.phase == "Pending" and again.update == first.update, "asked again until taken"
    running = turn(first.status, [children[0], took(children[1], "again-1", "Running")])
    assert running.update == [] and running.status.rerun.state == "Started" and running.status.phase == "Running"
    done = decide(running.status, [children[0], took(children[1], "again-1", "Succeeded")])
    assert done.status.phase == "Succeeded" and done.status.rows is not None
    assert turn(done.status, children).update == [], "a value acts once"


def test_a_rerun_of_a_parent_whose_shards_all_succeeded_reruns_every_shard() -> None:
    wire = dict(WIRE)
    children = [child(1, "Succeeded", 10), child(2, "Succeeded", 10)]
    ended = decide(planned(2), children).status
    first = decide_parent(api.parse_spec(wire), wire, ended, rerun_parent("fresh"), children, frozenset(), T0)
    assert [name for name, _ in first.update] == ["reviews-shard-00001", "reviews-shard-00002"]
    assert first.status.rerun.source == "Input"


def test_a_rerun_of_a_live_parent_is_ignored_and_said() -> None:
    wire = dict(WIRE)
    live = decide(planned(2), [child(1, "Running"), child(2, "Succeeded", 10)]).status
    decision = decide_parent(api.parse_spec(wire), wire, live, rerun_parent("now"), [], frozenset(), T0)
    assert decision.status.rerun.state == "Ignored" and decision.update[:0] == []
    assert ("Warning", "RerunIgnored") in [(e.type, e.reason) for e in decision.events]
