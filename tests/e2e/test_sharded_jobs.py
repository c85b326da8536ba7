"""A sharded resource end to end: preflight splits its input, one child per shard, one Vertex job per
shard attempt, a shard failing half-way resumed alone, the parent rolled up with one results manifest
over every shard, suspend held, and the children deleted with it."""

from __future__ import annotations

import json
from typing import Any

from test_bigquery import bq_manifest
from test_operator import events_for, jobs_of, kubectl, phase_of, stored
from test_vertex_bigquery import TICKET_COLUMNS, tickets

from conftest import (
    bij_path,
    call,
    control,
    eventually,
    job_manifest,
    make_table,
    read_table,
    requests_rows,
    write_jsonl,
)

MERGE = {"Content-Type": "application/merge-patch+json"}


def read_line(bucket: Any, uri: str, line: int) -> dict[str, Any]:
    """Line `line` (1-based) of a Cloud Storage file."""
    data = bucket.blob(uri.removeprefix(f"gs://{bucket.name}/")).download_as_bytes()
    return json.loads(data.splitlines()[line - 1])


SIZES = [4, 4, 3]


async def planned_parent(stack: Any, bucket: Any, name: str, sizes: list[int], **spec: Any) -> dict[str, Any]:
    """A resource whose input preflight cuts into shards of these sizes (`maxRequestsPerShard` is the
    first size: the splitter cuts in input order); returns it once its plan is recorded."""
    assert all(size == sizes[0] for size in sizes[:-1]) and sizes[-1] <= sizes[0], "sizes the splitter makes"
    src = write_jsonl(bucket, f"{name}.jsonl", requests_rows(sum(sizes)))
    manifest = job_manifest(
        name, src, f"gs://{bucket.name}/{name}/", sharding={"maxRequestsPerShard": sizes[0]}, **spec
    )
    manifest["spec"]["input"]["keyField"] = "id"
    await call(stack.kube, "POST", bij_path(), manifest)
    body = await eventually(lambda: (stored(stack, name) or {}).get("status", {}).get("shards") and stored(stack, name))
    assert [shard["rows"] for shard in body["status"]["shards"]] == sizes
    return body


def children_of(stack: Any, uid: str) -> list[dict[str, Any]]:
    return [
        job
        for job in stack.kube.list_objects("batchinferencejobs", "default")
        if any(ref["uid"] == uid for ref in job["metadata"].get("ownerReferences") or [])
    ]


async def test_three_shards_run_as_three_children_and_a_failed_shard_resumes_alone(stack: Any, bucket: Any) -> None:
    rule = {"outcome": "FAILED", "afterFraction": 0.5, "code": 13, "match": {"labels": {"bij-shard": "00002"}}}
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [rule]})
    parent = await planned_parent(stack, bucket, "sharded", SIZES, suspend=True, resume={"backoffSeconds": 0})
    uid = parent["metadata"]["uid"]

    # suspended: split, but no shard started, and nothing is paid for yet
    held = await phase_of(stack, "sharded", {"Suspended"})
    assert held["status"]["shardsDone"] == "0/3" and children_of(stack, uid) == []
    assert (await control(stack, "GET", "/emulator/v1/jobs")).get("jobs", []) == []
    await call(stack.kube, "PATCH", bij_path(name="sharded"), {"spec": {"suspend": False}}, MERGE)
    await eventually(lambda: len(children_of(stack, uid)) == 3, timeout=20, message="three children")

    done = await phase_of(stack, "sharded", within=90)
    status = done["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["shardsDone"] == "3/3" and status["completionStats"]["successful"] == sum(SIZES)
    assert status["usage"]["requests"] == sum(SIZES) and not status.get("attempts")
    children = sorted(children_of(stack, uid), key=lambda c: c["metadata"]["name"])
    assert [c["metadata"]["name"] for c in children] == [f"sharded-shard-0000{i}" for i in (1, 2, 3)]
    for index, child in enumerate(children, 1):
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"], owner["blockOwnerDeletion"]) == (
            "BatchInferenceJob",
            "sharded",
            True,
            True,
        )
        assert child["metadata"]["labels"]["batchinference.dev/shard-of"] == "sharded"
        assert child["spec"]["output"]["gcs"]["uriPrefix"] == f"gs://{bucket.name}/sharded/shards/output-0000{index}/"

    everything = await control(stack, "GET", "/emulator/v1/jobs")
    assert jobs_of(everything, uid) == [], "the parent never creates a Vertex job"
    per_shard = {c["metadata"]["name"]: jobs_of(everything, c["metadata"]["uid"]) for c in children}
    attempts = {name: sorted(job["labels"]["bij-attempt"] for job in jobs) for name, jobs in per_shard.items()}
    assert attempts == {
        "sharded-shard-00001": ["1"],
        "sharded-shard-00002": ["1", "2"],
        "sharded-shard-00003": ["1"],
    }, "one job per shard attempt; only the failed shard was resumed"
    for name, jobs in per_shard.items():
        assert {job["labels"]["bij-shard"] for job in jobs} == {name[-5:]}
    shard_two = status["shards"][1]
    assert shard_two["attempts"] == 2 and shard_two["state"] == "Succeeded"
    assert shard_two["job"] == per_shard["sharded-shard-00002"][-1]["name"] or shard_two["job"].endswith(
        per_shard["sharded-shard-00002"][-1]["id"]
    )

    # one manifest over every shard: each input key once, with the shard and the line of its answer
    assert status["rows"] == {"total": 11, "succeeded": 11, "failed": 0, "missing": 0}
    assert status["manifest"] == f"gs://{bucket.name}/sharded/results-manifest.jsonl"
    entries = [
        json.loads(line) for line in bucket.blob("sharded/results-manifest.jsonl").download_as_bytes().splitlines()
    ]
    assert sorted(e["key"] for e in entries) == sorted(f"r{i}" for i in range(11))
    assert [e["shard"] for e in entries] == [1] * 4 + [2] * 4 + [3] * 3
    for entry in entries:
        answer = read_line(bucket, entry["file"], entry["line"])
        assert answer["id"] == entry["key"] and answer["response"] and not answer["status"]

    code, out, err = await kubectl(stack, "get", "bij", "sharded")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert "SHARDS" in header.split() and "3/3" in row.split()

    await call(stack.kube, "DELETE", bij_path(name="sharded"))
    await eventually(lambda: stored(stack, "sharded") is None and not children_of(stack, uid), timeout=20)
    assert not [name for name in ("sharded-shard-00001", "sharded-shard-00002") if stored(stack, name)]


async def test_a_shard_that_fails_for_good_leaves_the_parent_partially_succeeded(stack: Any, bucket: Any) -> None:
    rule = {"outcome": "FAILED", "code": 3, "message": "bad shard", "match": {"labels": {"bij-shard": "00001"}}}
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [rule]})
    await planned_parent(stack, bucket, "split-two", [3, 2], resume={"maxAttempts": 1})
    done = await phase_of(stack, "split-two", within=60)
    status = done["status"]
    assert status["phase"] == "PartiallySucceeded", status.get("message")
    assert status["completionStats"]["successful"] == 2 and status["shardsDone"] == "2/2"
    assert [s["state"] for s in status["shards"]] == ["Failed", "Succeeded"]
    await eventually(lambda: ("Warning", "ShardFailed") in events_for(stack, "split-two"), timeout=10)
    assert events_for(stack, "split-two").count(("Warning", "ShardFailed")) == 1

    # the re-run annotation on the parent re-runs only the failed shard; the parent ends with every row
    await control(stack, "DELETE", "/emulator/v1/faults")
    before = {c["metadata"]["name"]: c["status"]["attempt"] for c in children_of(stack, done["metadata"]["uid"])}
    patch = {"metadata": {"annotations": {"batchinference.dev/rerun": "fixed-1"}}}
    await call(stack.kube, "PATCH", bij_path(name="split-two"), patch, MERGE)
    await eventually(lambda: (stored(stack, "split-two") or {})["status"].get("phase") == "Succeeded", timeout=60)
    again = stored(stack, "split-two")["status"]
    assert again["rows"] == {"total": 5, "succeeded": 5, "failed": 0, "missing": 0}
    assert [s["state"] for s in again["shards"]] == ["Succeeded", "Succeeded"]
    after = {c["metadata"]["name"]: c["status"]["attempt"] for c in children_of(stack, done["metadata"]["uid"])}
    assert after == {
        "split-two-shard-00001": before["split-two-shard-00001"] + 1,
        "split-two-shard-00002": before["split-two-shard-00002"],
    }, "only the failed shard ran again"


async def test_a_bigquery_input_runs_its_shard_tables_into_the_parents_dataset(
    stack: Any, bigquery: Any, dataset: str
) -> None:
    rows = tickets(12)
    source = make_table(bigquery, f"{dataset}.tickets", rows, TICKET_COLUMNS)
    manifest = bq_manifest(
        "bq-split",
        {"bigquery": {"table": source}, "keyField": "id"},
        {"bigquery": {"table": f"bq://{dataset}.out"}},
        sharding={"maxRequestsPerShard": 7},
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "bq-split", within=90))["status"]
    assert done["phase"] == "Succeeded", [(stored(stack, s["resource"]) or {}).get("status") for s in done["shards"]]
    assert done["completionStats"]["successful"] == 12 and done["usage"]["requests"] == 12
    outputs = [stored(stack, shard["resource"])["status"]["outputLocation"] for shard in done["shards"]]
    assert all(output.startswith(f"bq://{dataset}.predictions_") for output in outputs), outputs
    assert len(set(outputs)) == 2, "one output table per shard, none shared"
    seen = sorted(row["id"] for output in outputs for row in read_table(bigquery, output))
    assert seen == sorted(row["id"] for row in rows), "every row exactly once across the shards"
    assert done["rows"] == {"total": 12, "succeeded": 12, "failed": 0, "missing": 0}
    assert [s["rows"] for s in done["shards"]] == [6, 6]
    keys = sorted(row["key"] for row in read_table(bigquery, done["manifest"]))
    assert keys == sorted(row["id"] for row in rows), "the manifest table holds every key once"


async def test_a_shards_name_held_by_another_resource_is_said_and_not_taken_over(stack: Any, bucket: Any) -> None:
    other = job_manifest(
        "taken-shard-00002", write_jsonl(bucket, "o.jsonl", requests_rows(1)), f"gs://{bucket.name}/o/"
    )
    await call(stack.kube, "POST", bij_path(), other)
    await phase_of(stack, "taken-shard-00002")
    await planned_parent(stack, bucket, "taken", [1, 1])
    waiting = await eventually(
        lambda: "shardsDone" in (stored(stack, "taken") or {}).get("status", {}) and stored(stack, "taken")
    )
    await eventually(
        lambda: "ShardNameTaken" in {c["reason"] for c in (stored(stack, "taken") or {})["status"]["conditions"]},
        timeout=20,
    )
    status = stored(stack, "taken")["status"]
    assert "BatchInferenceJob taken-shard-00002 exists and is not a shard of this resource" in status["message"]
    assert not stored(stack, "taken-shard-00002")["metadata"].get("ownerReferences"), "the other resource is untouched"
    assert stored(stack, "taken-shard-00001") is not None, "the free shard started"
    assert waiting["status"]["shardsDone"].endswith("/2")
