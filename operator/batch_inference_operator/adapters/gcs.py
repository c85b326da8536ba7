"""The Cloud Storage adapter: list and stream objects for preflight and usage, never loading one whole.

google-cloud-storage finds credentials itself: Application Default Credentials (Workload Identity on
GKE), or anonymous ones against the emulator named by `STORAGE_EMULATOR_HOST`. It is synchronous,
so callers run these methods in a worker thread.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator

from google.api_core import exceptions as gexc
from google.cloud import storage

from ..core.uris import GcsUri
from .errors import AdapterError

CHUNK = 4 << 20


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
