"""The results writers over fake-gcs-server with the real storage client: the manifest and the
missing-rows file are written once (a second try from the same outputs keeps the object and only
counts), and a manifest from other outputs (a re-run) replaces the old one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch_inference_operator.adapters.bigquery import BigQuery
from batch_inference_operator.adapters.gcs import CloudStorage
from batch_inference_operator.controller.results import SOURCE_METADATA, find_missing, write_manifest
from batch_inference_operator.core.actions import ScanOutput, WriteManifest
from batch_inference_operator.core.ledger import Shard
from conftest import requests_rows, write_jsonl


@pytest.fixture
def storage(gcs: Any, monkeypatch: pytest.MonkeyPatch) -> CloudStorage:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    return CloudStorage()


def answered(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "status": "", "response": {"candidates": [{"content": {"parts": [{"text": "ok"}]}}]}}


def test_the_manifest_is_written_once_and_replaced_only_for_other_outputs(storage: CloudStorage, bucket: Any) -> None:
    rows = [{"key": f"k{i}", **row} for i, row in enumerate(requests_rows(5))]
    src = write_jsonl(bucket, "in.jsonl", rows)
    first_out = write_jsonl(bucket, "out/a/predictions.jsonl", [answered(r) for r in reversed(rows[:4])])
    uri = f"gs://{bucket.name}/out/results-manifest.jsonl"
    action = WriteManifest(uri, (Shard(1, (src,), first_out),), "key", "demo-project", "us-central1")

    totals = write_manifest(storage, BigQuery(), action)
    assert (totals.total, totals.succeeded, totals.missing) == (5, 4, 1)
    written = bucket.get_blob("out/results-manifest.jsonl")
    manifest = [json.loads(line) for line in written.download_as_text().splitlines()]
    assert [(m["key"], m["outcome"], m.get("line")) for m in manifest] == [
        ("k0", "succeeded", 4),
        ("k1", "succeeded", 3),
        ("k2", "succeeded", 2),
        ("k3", "succeeded", 1),
        ("k4", "missing", None),
    ]

    again = write_manifest(storage, BigQuery(), action)  # a restart before the status was recorded
    assert again == totals
    assert bucket.get_blob("out/results-manifest.jsonl").generation == written.generation, "kept, not rewritten"

    second_out = write_jsonl(bucket, "out/b/predictions.jsonl", [answered(r) for r in rows])
    rerun = WriteManifest(uri, (Shard(1, (src,), second_out),), "key", "demo-project", "us-central1")
    assert write_manifest(storage, BigQuery(), rerun).succeeded == 5
    replaced = bucket.get_blob("out/results-manifest.jsonl")
    assert (
        replaced.generation != written.generation
        and replaced.metadata[SOURCE_METADATA] != written.metadata[SOURCE_METADATA]
    )
    assert {json.loads(line)["file"] for line in replaced.download_as_text().splitlines()} == {second_out}


def test_missing_rows_are_written_as_read_once(storage: CloudStorage, bucket: Any) -> None:
    rows = requests_rows(6)  # content keys
    bucket.blob("in.jsonl").upload_from_string("".join(json.dumps(r, indent=None) + "\n" for r in rows))
    src = f"gs://{bucket.name}/in.jsonl"
    write_jsonl(bucket, "out/prediction-model-1/predictions.jsonl", [answered(r) for r in rows if r["id"] != "r2"])
    missing_uri = f"gs://{bucket.name}/out/ledger/missing-after-attempt-1.jsonl"
    action = ScanOutput(1, f"gs://{bucket.name}/out/prediction-model-1", (src,), "key", missing_uri)
    assert find_missing(storage, BigQuery(), action, "demo-project") == (1, missing_uri, None)
    blob = bucket.get_blob("out/ledger/missing-after-attempt-1.jsonl")
    assert blob.download_as_bytes() == (json.dumps(rows[2]) + "\n").encode()
    assert find_missing(storage, BigQuery(), action, "demo-project") == (1, missing_uri, None)
    assert bucket.get_blob("out/ledger/missing-after-attempt-1.jsonl").generation == blob.generation

    complete = ScanOutput(1, f"gs://{bucket.name}/out/prediction-model-1", (src,), "id", missing_uri)
    assert find_missing(storage, BigQuery(), complete, "demo-project") == (1, missing_uri, None), "keyed by id: r2 too"
