"""Cloud Storage access for the emulator: streamed reads and writes through google-cloud-storage.

The endpoint is `STORAGE_EMULATOR_HOST` (or an explicit one); credentials are anonymous, as the GCS
emulators expect. Nothing here holds a whole object in memory.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

READ_CHUNK = 4 << 20
WRITE_CHUNK = 8 << 20  # resumable uploads need a multiple of 256 KiB


class BucketMissing(Exception):
    def __init__(self, bucket: str) -> None:
        super().__init__(bucket)
        self.bucket = bucket


@dataclass(frozen=True)
class GcsPath:
    bucket: str
    name: str

    @classmethod
    def parse(cls, uri: str) -> GcsPath:
        if not uri.startswith("gs://"):
            raise ValueError(f"{uri!r} is not a gs:// URI")
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        return cls(bucket, name)

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def make_client(endpoint: str | None = None) -> storage.Client:
    endpoint = endpoint or os.environ.get("STORAGE_EMULATOR_HOST")
    if not endpoint:
        raise RuntimeError("set STORAGE_EMULATOR_HOST (or --gcs-endpoint) to the GCS emulator's URL")
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    return storage.Client(
        project="vertex-batch-emulator",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


class Storage:
    def __init__(self, client: storage.Client) -> None:
        self.client = client

    def _bucket(self, name: str) -> storage.Bucket:
        try:
            return self.client.get_bucket(name)
        except gexc.NotFound:
            raise BucketMissing(name) from None

    def require_bucket(self, name: str) -> None:
        self._bucket(name)

    def expand(self, uri: str) -> list[tuple[str, int]]:
        """The objects a URI names, with their sizes; `*` wildcards are matched against object names."""
        path = GcsPath.parse(uri)
        bucket = self._bucket(path.bucket)
        if "*" not in path.name:
            blob = bucket.get_blob(path.name)
            return [] if blob is None else [(str(path), blob.size or 0)]
        prefix = path.name.split("*", 1)[0]
        matched = [
            (f"gs://{path.bucket}/{blob.name}", blob.size or 0)
            for blob in self.client.list_blobs(bucket, prefix=prefix)
            if fnmatch.fnmatchcase(blob.name, path.name)
        ]
        return sorted(matched)

    def lines(self, uri: str) -> Iterator[bytes]:
        """The object's lines without their newlines, read in chunks."""
        path = GcsPath.parse(uri)
        blob = self._bucket(path.bucket).blob(path.name)
        pending = b""
        with blob.open("rb", chunk_size=READ_CHUNK) as reader:
            while chunk := reader.read(READ_CHUNK):
                parts = (pending + chunk).split(b"\n")
                pending = parts.pop()
                yield from parts
        if pending:
            yield pending

    def writer(self, uri: str):
        path = GcsPath.parse(uri)
        blob = self._bucket(path.bucket).blob(path.name)
        return blob.open("wb", chunk_size=WRITE_CHUNK, content_type="application/jsonl")
