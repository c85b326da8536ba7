"""Preflight's split, duplicate keys and cost limit end to end: the operator as its own process, the real
Kubernetes, Cloud Storage and google-genai clients, fake-gcs-server and the Vertex emulator."""

from __future__ import annotations

import json
from typing import Any

from test_bigquery import bq_manifest
from test_operator import has_event, phase_of, stored
from test_vertex_bigquery import TICKET_COLUMNS, tickets

from conftest import bij_path, call, eventually, job_manifest, make_table, read_table, requests_rows, write_jsonl


def sharded(stack: Any, name: str) -> dict[str, Any] | None:
    """The resource once its split is recorded (condition Sharded=True), else None."""
    obj = stored(stack, name) or {}
    status = obj.get("status", {})
    done = any(c["type"] == "Sharded" and c["status"] == "True" for c in status.get("conditions", []))
    return obj if done else None


def shard_objects(bucket: Any, prefix: str) -> dict[str, Any]:
    return {blob.name: blob for blob in bucket.client.list_blobs(bucket.name, prefix=prefix)}


def request_lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line.strip()]


async def test_an_input_over_the_limit_is_split_into_shards_holding_exactly_its_lines(stack: Any, bucket: Any) -> None:
    rows = requests_rows(45)
    src = write_jsonl(bucket, "in.jsonl", rows)
    # Suspended: the split happens, its shards' resources wait (tests/e2e/test_sharded_jobs.py runs them).
    manifest = job_manifest(
        "split", src, f"gs://{bucket.name}/out/", sharding={"maxRequestsPerShard": 10}, suspend=True
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await eventually(lambda: sharded(stack, "split"), timeout=30, message="split recorded"))["status"]
    assert done["phase"] in ("Pending", "Suspended") and any("5 shards" in c["message"] for c in done["conditions"])
    assert [(s["index"], s["rows"]) for s in done["shards"]] == [(1, 10), (2, 10), (3, 10), (4, 10), (5, 5)]
    files = [s["input"][0] for s in done["shards"]]
    assert files == [f"gs://{bucket.name}/out/shards/input-{i:05d}.jsonl" for i in range(1, 6)]
    blobs = shard_objects(bucket, "out/shards/")
    contents = [blobs[uri.removeprefix(f"gs://{bucket.name}/")].download_as_bytes() for uri in files]
    assert [s["bytes"] for s in done["shards"]] == [len(c) for c in contents]
    assert [line for c in contents for line in request_lines(c)] == request_lines(
        bucket.blob("in.jsonl").download_as_bytes()
    ), "the shards hold the input's lines, each once, in order"
    assert done["estimate"]["inputTokens"] > 0 and done["estimate"]["costUSD"]
    assert not done.get("attempts") and stack.engine.stats["create", 200] == 0, "no Vertex job for the whole input"
    await has_event(stack, "split", ("Normal", "ShardsPlanned"))


async def test_a_split_cut_off_by_a_kill_is_finished_once_after_the_restart(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(400))
    manifest = job_manifest(
        "crash-split", src, f"gs://{bucket.name}/out/", sharding={"maxRequestsPerShard": 1}, suspend=True
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    await eventually(lambda: len(shard_objects(bucket, "out/shards/")) >= 20, timeout=60, message="shards written")
    await stack.stop_operator(kill=True)
    before = {name: blob.generation for name, blob in shard_objects(bucket, "out/shards/").items()}
    assert 20 <= len(before) < 400, "killed in the middle of the split"
    assert not (stored(stack, "crash-split") or {}).get("status", {}).get("shards"), "the plan was not recorded yet"
    await stack.start_operator()
    done = (await eventually(lambda: sharded(stack, "crash-split"), timeout=90, message="split recorded"))["status"]
    after = shard_objects(bucket, "out/shards/")
    assert len(done["shards"]) == 400 and len(after) == 400
    assert all(after[name].generation == generation for name, generation in before.items()), (
        "shards written before the kill were verified, not written again"
    )
    lines = [request_lines(after[f"out/shards/input-{i:05d}.jsonl"].download_as_bytes()) for i in range(1, 401)]
    assert all(len(one) == 1 for one in lines)
    assert [json.loads(one[0])["id"] for one in lines] == [f"r{i}" for i in range(400)]
    assert stack.engine.stats["create", 200] == 0


async def test_duplicate_keys_are_refused_with_their_lines_before_anything_is_paid(stack: Any, bucket: Any) -> None:
    rows = requests_rows(6)
    for row in rows:
        row["ticket"] = row.pop("id")
    rows[4]["ticket"] = "r1"
    src = write_jsonl(bucket, "in.jsonl", rows)
    manifest = job_manifest(
        "dupes", src, f"gs://{bucket.name}/out/", input={"gcs": {"uris": [src]}, "keyField": "ticket"}
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "dupes"))["status"]
    assert done["phase"] == "Failed" and "duplicate key 'r1'" in done["message"]
    assert "in.jsonl lines 2 and 5" in done["message"], done["message"]
    assert next(c for c in done["conditions"] if c["type"] == "Failed")["reason"] == "InvalidInput"
    assert stack.engine.stats["create", 200] == 0, "no Vertex job was created"


async def test_a_job_estimated_over_max_estimated_cost_is_refused_with_no_vertex_job(stack: Any, bucket: Any) -> None:
    rows = requests_rows(20, prefix="Summarise this carefully. " * 400)  # about 2,600 tokens a request
    src = write_jsonl(bucket, "in.jsonl", rows)
    manifest = job_manifest("costly", src, f"gs://{bucket.name}/out/", maxEstimatedCostUSD="0.001")
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "costly"))["status"]
    assert done["phase"] == "Failed"
    assert next(c for c in done["conditions"] if c["type"] == "Failed")["reason"] == "CostLimitExceeded"
    assert "over spec.maxEstimatedCostUSD $0.001" in done["message"] and "nothing was submitted" in done["message"]
    assert done["estimate"]["inputTokens"] > 50_000 and float(done["estimate"]["costUSD"]) > 0.001
    assert not done.get("attempts") and stack.engine.stats["create", 200] == 0, "no Vertex job was created"
    await has_event(stack, "costly", ("Warning", "CostLimitExceeded"))
    cheap = job_manifest("cheap", src, f"gs://{bucket.name}/cheap/", maxEstimatedCostUSD="5")
    await call(stack.kube, "POST", bij_path(), cheap)
    fine = (await phase_of(stack, "cheap", within=60))["status"]
    assert fine["phase"] == "Succeeded" and fine["estimate"]["costUSD"], "under the limit it runs as before"


async def test_a_bigquery_table_over_the_limit_is_split_into_shard_tables_by_key(
    stack: Any, bigquery: Any, dataset: str
) -> None:
    source = make_table(bigquery, f"{dataset}.tickets", tickets(25), TICKET_COLUMNS)
    manifest = bq_manifest(
        "bq-split",
        {"bigquery": {"table": source}, "keyField": "id"},
        {"bigquery": {"dataset": f"bq://{dataset}"}},
        sharding={"maxRequestsPerShard": 10},
        suspend=True,
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await eventually(lambda: sharded(stack, "bq-split"), timeout=60, message="split recorded"))["status"]
    tables = [f"bq://{dataset}.tickets_shard{i:05d}of00003" for i in (1, 2, 3)]
    assert [(s["input"][0], s["rows"]) for s in done["shards"]] == list(zip(tables, [9, 8, 8], strict=True))
    ids = [sorted(row["id"] for row in read_table(bigquery, table)) for table in tables]
    everything = sorted(f"r{i}" for i in range(25))
    assert ids == [everything[:9], everything[9:17], everything[17:]], "cut in key order, each row once"
    assert stack.engine.stats["create", 200] == 0


async def test_duplicate_keys_in_a_bigquery_table_are_refused(stack: Any, bigquery: Any, dataset: str) -> None:
    rows = tickets(6)
    rows[3]["id"] = "r1"
    source = make_table(bigquery, f"{dataset}.tickets", rows, TICKET_COLUMNS)
    manifest = bq_manifest(
        "bq-dupes", {"bigquery": {"table": source}, "keyField": "id"}, {"bigquery": {"dataset": f"bq://{dataset}"}}
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "bq-dupes"))["status"]
    assert done["phase"] == "Failed" and "2 rows hold the same key 'r1'" in done["message"], done["message"]
    assert stack.engine.stats["create", 200] == 0
