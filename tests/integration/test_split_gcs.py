"""The shard writer against fake-gcs-server with the real Cloud Storage client: shards hold the planned byte
ranges (a missing last newline added), an identical shard left by an earlier split is kept, a differing one
fails clearly and is never overwritten."""

from __future__ import annotations

from typing import Any

import pytest

from batch_inference_operator.adapters.errors import AdapterError
from batch_inference_operator.adapters.gcs import CloudStorage
from batch_inference_operator.core.sharding import Piece


def storage(gcs: Any) -> CloudStorage:
    adapter = CloudStorage()
    adapter._client = gcs.client()  # the adapter's lazily made client, pointed at the stand-in
    return adapter


def test_a_shard_is_written_once_and_an_identical_one_is_kept(gcs: Any, bucket: Any) -> None:
    bucket.blob("a.jsonl").upload_from_string(b'{"request": {"n": 1}}\n{"request": {"n": 2}}\n')
    bucket.blob("b.jsonl").upload_from_string(b'{"request": {"n": 3}}')  # no newline at its end
    a, b = f"gs://{bucket.name}/a.jsonl", f"gs://{bucket.name}/b.jsonl"
    pieces = [Piece(a, 22, 44), Piece(b, 0, 21, newline=True)]
    target = f"gs://{bucket.name}/out/shards/input-00002.jsonl"
    adapter = storage(gcs)
    assert adapter.write_shard(target, pieces, 44) is True
    written = bucket.get_blob("out/shards/input-00002.jsonl")
    assert written.download_as_bytes() == b'{"request": {"n": 2}}\n{"request": {"n": 3}}\n'
    assert adapter.write_shard(target, pieces, 44) is False, "verified, not written again"
    assert bucket.get_blob("out/shards/input-00002.jsonl").generation == written.generation


def test_a_differing_shard_fails_clearly_and_is_kept(gcs: Any, bucket: Any) -> None:
    bucket.blob("a.jsonl").upload_from_string(b'{"request": {"n": 1}}\n{"request": {"n": 2}}\n')
    bucket.blob("out/shards/input-00001.jsonl").upload_from_string(b'{"request": {"n": 9}}\n')
    target = f"gs://{bucket.name}/out/shards/input-00001.jsonl"
    with pytest.raises(AdapterError) as raised:
        storage(gcs).write_shard(target, [Piece(f"gs://{bucket.name}/a.jsonl", 0, 22)], 22)
    assert raised.value.reason == "ShardMismatch" and not raised.value.retryable
    assert "exists but differs from this input's shard" in raised.value.message
    assert bucket.blob("out/shards/input-00001.jsonl").download_as_bytes() == b'{"request": {"n": 9}}\n'
