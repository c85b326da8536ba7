"""Issue 18's end-to-end bar at full size: 450,000 requests with maxRequestsPerShard 200,000 give 3 shards
and 3 Vertex jobs; one shard failing half-way is resumed alone; the final manifest holds all 450,000 keys
exactly once and agrees row by row with what the emulator wrote."""

from __future__ import annotations

import json
from typing import Any

from test_operator import jobs_of, phase_of, stored
from test_sharded_jobs import children_of

from conftest import bij_path, call, control, job_manifest

ROWS = 450_000


def big_input(bucket: Any, name: str) -> str:
    """450,000 short requests, each with its own key in "id", uploaded as one file (about 45 MB)."""
    lines = (
        f'{{"id":"r{i}","request":{{"contents":[{{"role":"user","parts":[{{"text":"q{i}"}}]}}]}}}}' for i in range(ROWS)
    )
    bucket.blob(name).upload_from_string("\n".join(lines) + "\n")
    return f"gs://{bucket.name}/{name}"


def keys_by_line(bucket: Any, uri: str) -> list[str]:
    """The "id" echoed on each line of an output file, in line order."""
    data = bucket.blob(uri.removeprefix(f"gs://{bucket.name}/")).download_as_bytes()
    return [json.loads(line)["id"] for line in data.splitlines()]


async def test_450000_requests_run_as_three_shards_and_one_manifest(stack: Any, bucket: Any) -> None:
    rule = {"outcome": "FAILED", "afterFraction": 0.5, "code": 13, "match": {"labels": {"bij-shard": "00002"}}}
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [{**rule, "times": 1}]})
    src = big_input(bucket, "big.jsonl")
    manifest = job_manifest(
        "big", src, f"gs://{bucket.name}/big/", sharding={"maxRequestsPerShard": 200_000}, resume={"backoffSeconds": 0}
    )
    manifest["spec"]["input"]["keyField"] = "id"
    await call(stack.kube, "POST", bij_path(), manifest)
    status = (await phase_of(stack, "big", within=600))["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert [s["rows"] for s in status["shards"]] == [200_000, 200_000, 50_000]
    assert status["rows"] == {"total": ROWS, "succeeded": ROWS, "failed": 0, "missing": 0}

    uid = stored(stack, "big")["metadata"]["uid"]
    everything = await control(stack, "GET", "/emulator/v1/jobs")
    assert jobs_of(everything, uid) == [], "the parent never creates a Vertex job"
    children = {c["metadata"]["name"]: c for c in children_of(stack, uid)}
    attempts = {
        name: sorted(j["labels"]["bij-attempt"] for j in jobs_of(everything, c["metadata"]["uid"]))
        for name, c in children.items()
    }
    assert attempts == {"big-shard-00001": ["1"], "big-shard-00002": ["1", "2"], "big-shard-00003": ["1"]}

    entries = [json.loads(line) for line in bucket.blob("big/results-manifest.jsonl").download_as_bytes().splitlines()]
    assert len(entries) == ROWS and len({e["key"] for e in entries}) == ROWS, "every key exactly once"
    assert {e["key"] for e in entries} == {f"r{i}" for i in range(ROWS)}
    outputs = {}
    for entry in entries:
        assert entry["outcome"] == "succeeded", entry
        if entry["file"] not in outputs:
            outputs[entry["file"]] = keys_by_line(bucket, entry["file"])
        assert outputs[entry["file"]][entry["line"] - 1] == entry["key"], "the manifest points at the key's answer"
    assert len(outputs) == 3, "one final output per shard"
