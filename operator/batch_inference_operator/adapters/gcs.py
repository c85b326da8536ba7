"""The Cloud Storage adapter: list and stream objects for preflight and usage, never loading one whole.

google-cloud-storage finds credentials itself: Application Default Credentials (Workload Identity on
GKE), or anonymous ones against the emulator named by `STORAGE_EMULATOR_HOST`. It is synchronous,
so callers run these methods in a worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import os
from collections.abc import Iterable, Iterator

import google_crc32c
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse

from ..core.sharding import Piece
from ..core.uris import GcsUri
from .errors import AdapterError

CHUNK = 4 << 20
READ_CHUNK = 8 << 20  # a shard's input is read in ranges of this size
UPLOAD_CHUNK = 32 << 20  # and uploaded in chunks of this size (a multiple of 256 KiB, as resumable uploads need)


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a stream of chunks, split on \\n; each byte is copied once (into its line), as the scans
    that read these lines run at several hundred MB/s and a second copy of every chunk showed."""
    pending = b""
    for chunk in chunks:
        parts = chunk.split(b"\n")
        if pending:
            parts[0] = pending + parts[0]
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def _missing(message: str) -> AdapterError:
    return AdapterError(message, retryable=False, reason="InputNotFound")


def _failed(message: str) -> AdapterError:
    return AdapterError(message, retryable=True)


@contextlib.contextmanager
def _streamed_upload() -> Iterator[None]:
    """A streamed writer (`blob.open("wb")`) reports a refused chunk as the media library's
    `InvalidResponse`, not as the API error its status means (412 when a precondition failed at
    finalization); raise the API error, as every other call does."""
    try:
        yield
    except InvalidResponse as error:
        status = getattr(error.response, "status_code", 500)
        raise gexc.from_http_status(status, f"upload answered {status}", response=error.response) from None


class CloudStorage:
    def __init__(self) -> None:
        self._client: storage.Client | None = None

    @property
    def client(self) -> storage.Client:
        if self._client is None:
            self._client = storage.Client()
        return self._client

    def objects(self, uri: str) -> list[tuple[str, int]]:
        """The objects a URI names, with sizes; a `*` wildcard matches object names."""
        parsed = GcsUri.parse(uri)
        bucket_name, name = parsed.bucket, parsed.name
        try:
            bucket = self.client.bucket(bucket_name)
            if "*" not in name:
                blob = bucket.get_blob(name)
                if blob is None:
                    raise _missing(f"{uri} does not exist")
                return [(uri, blob.size or 0)]
            prefix = name.split("*", 1)[0]
            found = [
                (f"gs://{bucket_name}/{b.name}", b.size or 0)
                for b in self.client.list_blobs(bucket_name, prefix=prefix)
                if fnmatch.fnmatchcase(b.name, name)
            ]
        except gexc.NotFound:
            raise _missing(f"bucket {bucket_name} of {uri} does not exist") from None
        except gexc.Forbidden as error:
            raise AdapterError(f"no permission to read {uri}: {error.message}", retryable=True, code=403) from None
        except gexc.GoogleAPIError as error:
            raise _failed(f"reading {uri} failed: {error}") from None
        if not found:
            raise _missing(f"no object matches {uri}")
        return sorted(found)

    def bucket_location(self, uri: str) -> str | None:
        """The location of the bucket a URI names (`US-CENTRAL1`, `US`, `NAM4`), failing `OutputNotFound` when
        it does not exist. None when the operator may not read bucket metadata (storage.buckets.get): its
        existence is then proven by listing objects (storage.objects.list), its location stays unknown."""
        name = GcsUri.parse(uri).bucket
        missing = AdapterError(
            f"the bucket {name} of {uri} does not exist: create it in the job's region, or fix the URI",
            retryable=False,
            reason="OutputNotFound",
        )
        try:
            location = self.client.get_bucket(name).location or None
            # fake-gcs-server (the local stand-in) reports every bucket in US-CENTRAL1, whatever it was created
            # with: its answer is not a location, so it is not checked against the job's.
            return None if os.environ.get("STORAGE_EMULATOR_HOST") else location
        except gexc.NotFound:
            raise missing from None
        except gexc.Forbidden:
            pass
        except gexc.GoogleAPIError as error:
            raise _failed(f"reading the bucket {name} failed: {error}") from None
        try:
            next(iter(self.client.list_blobs(name, max_results=1)), None)
        except gexc.NotFound:
            raise missing from None
        except gexc.Forbidden as error:
            raise AdapterError(f"no permission to list {uri}: {error.message}", retryable=True, code=403) from None
        except gexc.GoogleAPIError as error:
            raise _failed(f"listing {uri} failed: {error}") from None
        return None

    def lines(self, uri: str) -> Iterator[bytes]:
        return split_lines(self.chunks(uri))

    def chunks(self, uri: str) -> Iterator[bytes]:
        """The object's bytes as read, in chunks cut anywhere (core.usage.scan_stream splits them)."""
        parsed = GcsUri.parse(uri)
        bucket_name, name = parsed.bucket, parsed.name
        try:
            with self.client.bucket(bucket_name).blob(name).open("rb", chunk_size=CHUNK) as reader:
                yield from iter(lambda: reader.read(CHUNK), b"")
        except gexc.NotFound:
            raise _missing(f"{uri} does not exist") from None
        except gexc.GoogleAPIError as error:
            raise _failed(f"reading {uri} failed: {error}") from None

    def object_metadata(self, uri: str) -> tuple[int, dict[str, str]] | None:
        """An object's generation and custom metadata; None when it does not exist."""
        parsed = GcsUri.parse(uri)
        try:
            blob = self.client.bucket(parsed.bucket).get_blob(parsed.name)
        except gexc.NotFound:
            raise _missing(f"bucket {parsed.bucket} of {uri} does not exist") from None
        except gexc.GoogleAPIError as error:
            raise _failed(f"reading {uri} failed: {error}") from None
        return None if blob is None else (blob.generation or 0, dict(blob.metadata or {}))

    def write_lines(self, uri: str, lines: Iterable[bytes], metadata: dict[str, str], generation: int = 0) -> None:
        """Stream lines into an object, uploaded in chunks (never whole in memory). The write is conditional:
        with generation 0 only if no such object exists, else only over that generation, so two writers
        (a restart racing a slow first try) never both land; the loser's `Conflict` is retried and finds
        the winner's object."""
        parsed = GcsUri.parse(uri)
        blob = self.client.bucket(parsed.bucket).blob(parsed.name)
        blob.metadata = metadata
        try:
            with (
                _streamed_upload(),
                blob.open(
                    "wb", chunk_size=CHUNK, if_generation_match=generation, content_type="application/jsonl"
                ) as writer,
            ):
                for line in lines:
                    writer.write(line)
        except gexc.PreconditionFailed:
            raise AdapterError(f"{uri} was written meanwhile", retryable=True, reason="Conflict") from None
        except gexc.NotFound:
            raise _missing(f"bucket {parsed.bucket} of {uri} does not exist") from None
        except gexc.Forbidden as error:
            raise AdapterError(f"no permission to write {uri}: {error.message}", retryable=True, code=403) from None
        except gexc.GoogleAPIError as error:
            raise _failed(f"writing {uri} failed: {error}") from None

    def read_pieces(self, pieces: list[Piece]) -> Iterator[bytes]:
        """The bytes of a shard: its ranges of the input files, in order, each read in large chunks."""
        for piece in pieces:
            parsed = GcsUri.parse(piece.uri)
            with self.client.bucket(parsed.bucket).blob(parsed.name).open("rb", chunk_size=READ_CHUNK) as reader:
                reader.seek(piece.start)
                left = piece.end - piece.start
                while left > 0:
                    chunk = reader.read(min(READ_CHUNK, left))
                    if not chunk:
                        raise _failed(
                            f"{piece.uri} ended at byte {piece.end - left} while it was split: was it replaced?"
                        )
                    left -= len(chunk)
                    yield chunk
            if piece.newline:
                yield b"\n"

    def write_shard(self, uri: str, pieces: list[Piece], size: int) -> bool:
        """Write one shard file from its pieces, streamed, only if no object exists (`if_generation_match=0`:
        an upload cut off by a kill is never finalized, so no half-written shard is ever seen). A shard left by
        an earlier, interrupted split is verified, not rewritten: same size and CRC32C, or the split fails.
        True: written now; False: it was there already."""
        parsed = GcsUri.parse(uri)
        blob = self.client.bucket(parsed.bucket).blob(parsed.name)
        try:
            existing = self.client.bucket(parsed.bucket).get_blob(parsed.name)
            if existing is None:
                checksum = google_crc32c.Checksum()
                try:
                    with (
                        _streamed_upload(),
                        blob.open("wb", chunk_size=UPLOAD_CHUNK, if_generation_match=0, checksum=None) as writer,
                    ):
                        for chunk in self.read_pieces(pieces):
                            checksum.update(chunk)
                            writer.write(chunk)
                    blob.reload()
                    self._check_shard(uri, blob, size, checksum)
                    return True
                except gexc.PreconditionFailed:  # written meanwhile by another split of the same plan
                    existing = self.client.bucket(parsed.bucket).get_blob(parsed.name)
                    if existing is None:
                        raise
            checksum = google_crc32c.Checksum()
            if existing.size == size:
                for chunk in self.read_pieces(pieces):
                    checksum.update(chunk)
            self._check_shard(uri, existing, size, checksum)
            return False
        except gexc.Forbidden as error:
            raise AdapterError(f"no permission to write {uri}: {error.message}", retryable=True, code=403) from None
        except gexc.GoogleAPIError as error:
            raise _failed(f"writing the shard {uri} failed: {error}") from None

    @staticmethod
    def _check_shard(uri: str, blob: storage.Blob, size: int, checksum: google_crc32c.Checksum) -> None:
        ours = base64.b64encode(checksum.digest()).decode()
        if blob.size != size or blob.crc32c != ours:
            raise AdapterError(
                f"{uri} exists but differs from this input's shard ({blob.size} bytes, CRC32C {blob.crc32c}; "
                f"expected {size} bytes, CRC32C {ours}): another job or an earlier input wrote it. Delete it, "
                "or use another spec.output prefix",
                retryable=False,
                reason="ShardMismatch",
            )
