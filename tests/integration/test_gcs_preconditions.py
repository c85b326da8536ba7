"""The local Cloud Storage refuses what Cloud Storage refuses: generation preconditions hold on resumable
(streamed), media and multipart uploads and on compose, checked when the upload is finalized (a 412 with
the JSON API's `conditionNotMet` body, the object left as it was). Driven with the real storage client;
fake-gcs-server alone enforces them only on multipart uploads. Then the operator's writers meet a real
precondition failure: the shard writer verifies the winner's shard, the manifest writer reports a Conflict."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud.storage.exceptions import InvalidResponse

from batch_inference_operator.adapters.errors import AdapterError
from batch_inference_operator.adapters.gcs import CloudStorage
from batch_inference_operator.core.sharding import Piece

CHUNK = 256 << 10


def streamed(blob: Any, data: bytes, **conditions: int) -> None:
    """A resumable upload in several chunks, as the operator's writers upload."""
    with blob.open("wb", chunk_size=CHUNK, **conditions) as writer:
        writer.write(data)


def status_of(error: InvalidResponse) -> int:
    return error.response.status_code


def test_a_resumable_upload_meets_its_generation_at_finalization(bucket: Any) -> None:
    blob = bucket.blob("dir/streamed object.bin")
    first = b"a" * (3 * CHUNK + 5)
    streamed(blob, first, if_generation_match=0)
    generation = bucket.get_blob(blob.name).generation

    with pytest.raises(InvalidResponse) as refused:
        streamed(blob, b"b" * (2 * CHUNK + 1), if_generation_match=0)
    assert status_of(refused.value) == 412
    assert refused.value.response.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    with pytest.raises(InvalidResponse) as stale:
        streamed(blob, b"c" * 10, if_generation_match=generation + 1)
    assert status_of(stale.value) == 412
    kept = bucket.get_blob(blob.name)
    assert (kept.generation, kept.download_as_bytes()) == (generation, first)

    streamed(blob, b"d" * (CHUNK + 7), if_generation_match=generation)
    assert bucket.blob(blob.name).download_as_bytes() == b"d" * (CHUNK + 7)


def test_the_precondition_is_evaluated_when_the_upload_is_finalized_not_when_it_starts(bucket: Any) -> None:
    blob = bucket.blob("late.bin")
    with pytest.raises(InvalidResponse) as refused, blob.open("wb", chunk_size=CHUNK, if_generation_match=0) as writer:
        writer.write(b"x" * (2 * CHUNK))  # the session is open and a chunk is in
        bucket.blob(blob.name).upload_from_string(b"winner")  # another writer lands meanwhile
    assert status_of(refused.value) == 412
    assert bucket.blob(blob.name).download_as_bytes() == b"winner"


def test_a_session_refused_at_finalization_stays_refused(gcs: Any, bucket: Any) -> None:
    bucket.blob("taken").upload_from_string(b"old")
    session = bucket.blob("taken").create_resumable_upload_session(if_generation_match=0)
    final = {"Content-Range": "bytes 0-2/3"}
    assert requests.put(session, data=b"new", headers=final, timeout=10).status_code == 412
    assert requests.put(session, data=b"new", headers=final, timeout=10).status_code == 412
    assert bucket.blob("taken").download_as_bytes() == b"old"


@pytest.mark.parametrize("size", [10, 300 << 10], ids=["multipart", "large multipart"])
def test_single_request_uploads_meet_their_generation(bucket: Any, size: int) -> None:
    blob = bucket.blob(f"single-{size}")
    blob.upload_from_string(b"1" * size, if_generation_match=0)
    generation = bucket.get_blob(blob.name).generation
    with pytest.raises(gexc.PreconditionFailed):
        blob.upload_from_string(b"2", if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed):
        blob.upload_from_string(b"2", if_generation_match=generation + 1)
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("absent").upload_from_string(b"2", if_metageneration_match=1)
    blob.upload_from_string(b"3", if_generation_match=generation)
    assert blob.download_as_bytes() == b"3"


def test_a_media_upload_meets_its_generation(gcs: Any, bucket: Any) -> None:
    url = f"{gcs.url}/upload/storage/v1/b/{bucket.name}/o"
    created = requests.post(
        url, params={"uploadType": "media", "name": "m", "ifGenerationMatch": "0"}, data=b"one", timeout=10
    )
    assert created.status_code == 200, created.text
    generation = int(created.json()["generation"])
    again = requests.post(
        url, params={"uploadType": "media", "name": "m", "ifGenerationMatch": "0"}, data=b"two", timeout=10
    )
    assert again.status_code == 412
    assert again.json()["error"]["code"] == 412
    same = {"uploadType": "media", "name": "m", "ifGenerationNotMatch": str(generation)}
    assert requests.post(url, params=same, data=b"two", timeout=10).status_code == 304
    assert bucket.blob("m").download_as_bytes() == b"one"
    over = requests.post(
        url, params={"uploadType": "media", "name": "m", "ifGenerationMatch": str(generation)}, data=b"four", timeout=10
    )
    assert over.status_code == 200, over.text
    assert bucket.blob("m").download_as_bytes() == b"four"


def test_compose_meets_its_generation(bucket: Any) -> None:
    bucket.blob("p1").upload_from_string(b"a")
    bucket.blob("p2").upload_from_string(b"b")
    target = bucket.blob("whole")
    target.compose([bucket.blob("p1"), bucket.blob("p2")], if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed):
        target.compose([bucket.blob("p2"), bucket.blob("p1")], if_generation_match=0)
    assert target.download_as_bytes() == b"ab"


@pytest.fixture
def storage(gcs: Any, monkeypatch: pytest.MonkeyPatch) -> CloudStorage:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    return CloudStorage()


def test_the_manifest_writer_reports_a_conflict_when_another_writer_landed(storage: CloudStorage, bucket: Any) -> None:
    uri = f"gs://{bucket.name}/out/results-manifest.jsonl"
    storage.write_lines(uri, [b'{"key": "a"}'], {"source": "one"}, generation=0)
    with pytest.raises(AdapterError) as conflict:
        storage.write_lines(uri, [b'{"key": "b"}'], {"source": "two"}, generation=0)
    assert (conflict.value.reason, conflict.value.retryable) == ("Conflict", True)
    generation, metadata = storage.object_metadata(uri) or (0, {})
    assert metadata == {"source": "one"}
    with pytest.raises(AdapterError) as stale:
        storage.write_lines(uri, [b'{"key": "c"}'], {"source": "three"}, generation=generation + 1)
    assert stale.value.reason == "Conflict"
    storage.write_lines(uri, [b'{"key": "d"}'], {"source": "four"}, generation=generation)
    assert bucket.blob("out/results-manifest.jsonl").download_as_bytes() == b'{"key": "d"}'


class RacedStorage(CloudStorage):
    """The adapter, with another split of the same plan writing the shard just before this one finishes."""

    def __init__(self, bucket: Any, shard: str, content: bytes) -> None:
        super().__init__()
        self.rival = bucket.blob(shard), content

    def read_pieces(self, pieces: list[Piece]) -> Iterator[bytes]:
        yield from super().read_pieces(pieces)
        blob, content = self.rival
        blob.upload_from_string(content)


def test_the_shard_writer_verifies_a_shard_written_meanwhile(
    gcs: Any, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard's object appears after the writer looked: its upload is refused at finalization, and the
    writer checks the winner's shard (same bytes: fine; other bytes: the split fails) instead of crashing."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    bucket.blob("in.jsonl").upload_from_string(b"line one\nline two\n")
    pieces = [Piece(f"gs://{bucket.name}/in.jsonl", 0, 18, False)]
    same = RacedStorage(bucket, "shards/0.jsonl", b"line one\nline two\n")
    assert same.write_shard(f"gs://{bucket.name}/shards/0.jsonl", pieces, 18) is False
    other = RacedStorage(bucket, "shards/1.jsonl", b"line one\nline 2!\n")
    with pytest.raises(AdapterError):
        other.write_shard(f"gs://{bucket.name}/shards/1.jsonl", pieces, 18)
    assert bucket.blob("shards/1.jsonl").download_as_bytes() == b"line one\nline 2!\n"
    assert bucket.blob("shards/0.jsonl").download_as_bytes() == b"line one\nline two\n"
