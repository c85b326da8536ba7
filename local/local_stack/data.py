"""Data on the local stack's Cloud Storage and BigQuery stand-ins: buckets, datasets, uploads, table
loads, listings and reads, with the real Google clients. Used by `up --with-examples`, `make demo`
and the `mb | put | bq-load | ls | cat` commands; each refusal says what to do instead."""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import yaml
from google.api_core import exceptions
from google.cloud import bigquery, storage

from batch_inference_operator import api

from .bigquery_server import RETRY, bigquery_client

DEFAULT_LOCATION = "us-central1"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_BQ_PART = re.compile(r"^[A-Za-z0-9_-]+$")
# A first value's JSON type → the BigQuery column type bq-load gives it when no schema file is found.
_INFERRED = {bool: "BOOLEAN", int: "INTEGER", float: "FLOAT", str: "STRING", dict: "JSON", list: "JSON"}


class DataError(ValueError):
    """Bad input to a data command, with what to do instead."""


def split_gcs(uri: str) -> tuple[str, str]:
    """`gs://bucket/name` → (bucket, name); the name may be empty."""
    if not uri.startswith("gs://"):
        raise DataError(f"{uri!r} is not a Cloud Storage URI: write gs://BUCKET/PATH")
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not _BUCKET.match(bucket):
        raise DataError(f"{bucket!r} is not a bucket name: 3 to 63 lower-case letters, digits, '-', '_' or '.'")
    return bucket, name


def split_bq(uri: str, parts: int) -> list[str]:
    """`bq://project.dataset[.table]` → its parts, exactly `parts` of them."""
    shape = "bq://PROJECT.DATASET" + (".TABLE" if parts == 3 else "")
    if not uri.startswith("bq://"):
        raise DataError(f"{uri!r} is not a BigQuery URI: write {shape}")
    found = uri.removeprefix("bq://").split(".")
    if len(found) != parts or not all(_BQ_PART.match(part) for part in found):
        raise DataError(f"{uri!r} does not name a {'table' if parts == 3 else 'dataset'}: write {shape}")
    return found


# ---------------------------------------------------------------- Cloud Storage


def make_bucket(gcs: storage.Client, uri: str) -> bool:
    """Create the bucket a gs:// URI names; False when it already existed."""
    bucket, _ = split_gcs(uri)
    if gcs.lookup_bucket(bucket) is not None:
        return False
    gcs.create_bucket(bucket)
    return True


def _md5(source: pathlib.Path) -> str:
    """The file's MD5 as Cloud Storage reports an object's (`md5Hash`: base64)."""
    digest = hashlib.md5(usedforsecurity=False)
    with source.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def upload(gcs: storage.Client, source: pathlib.Path, uri: str) -> str:
    """Upload a file; a URI ending in `/` (or naming only the bucket) keeps the file's name. Returns the URI."""
    bucket, name = split_gcs(uri)
    if not source.is_file():
        raise DataError(f"{source} is not a file")
    if not name or name.endswith("/"):
        name += source.name
    if gcs.lookup_bucket(bucket) is None:
        raise DataError(
            f"bucket gs://{bucket} does not exist: make it first with `python -m local_stack mb gs://{bucket}`"
        )
    blob = gcs.bucket(bucket).get_blob(name)
    if blob is not None and blob.md5_hash == _md5(source):
        # Already there: not written again, as an overwrite is not atomic in fake-gcs-server (a job
        # reading the object meanwhile may find it missing; in Cloud Storage it would see the old one).
        return f"gs://{bucket}/{name}"
    gcs.bucket(bucket).blob(name).upload_from_filename(str(source))
    return f"gs://{bucket}/{name}"


def list_objects(gcs: storage.Client, uri: str) -> list[str]:
    bucket, prefix = split_gcs(uri)
    if gcs.lookup_bucket(bucket) is None:
        raise DataError(f"bucket gs://{bucket} does not exist")
    return [f"gs://{bucket}/{blob.name}" for blob in gcs.list_blobs(bucket, prefix=prefix or None)]


def read_object(gcs: storage.Client, uri: str) -> Iterator[str]:
    bucket, name = split_gcs(uri)
    blob = gcs.bucket(bucket).blob(name)
    if not name or not blob.exists():
        raise DataError(f"{uri} does not exist (list what is there with `python -m local_stack ls gs://{bucket}/`)")
    with blob.open("r") as reader:
        yield from reader


# ---------------------------------------------------------------- BigQuery


def make_dataset(url: str, uri: str, location: str = DEFAULT_LOCATION) -> bool:
    """Create the dataset of a bq:// URI (dataset or table) in `location`; False when it already existed."""
    project, dataset = split_bq(uri, 3 if uri.count(".") == 2 else 2)[:2]
    client = bigquery_client(url, project)
    try:
        client.get_dataset(f"{project}.{dataset}", retry=RETRY)
        return False
    except exceptions.NotFound:
        entry = bigquery.Dataset(f"{project}.{dataset}")
        entry.location = location
        client.create_dataset(entry, retry=RETRY)
        return True


def infer_schema(rows: pathlib.Path) -> list[dict[str, str]]:
    """A schema from the first row's JSON types: objects and arrays (so `request`) become JSON columns."""
    with rows.open() as reader:
        first = next((line for line in reader if line.strip()), None)
    if first is None:
        raise DataError(f"{rows} has no rows")
    try:
        row = json.loads(first)
    except ValueError as error:
        raise DataError(f"{rows}: the first line is not JSON ({error})") from None
    if not isinstance(row, dict) or "request" not in row:
        raise DataError(f"{rows}: each line must be a JSON object with a `request` (a GenerateContentRequest)")
    return [{"name": key, "type": _INFERRED.get(type(value), "STRING")} for key, value in row.items()]


def load_table(
    url: str, rows: pathlib.Path, uri: str, schema_file: pathlib.Path | None = None, location: str = DEFAULT_LOCATION
) -> int:
    """Load a JSONL file into the table (replacing its rows), creating the dataset when missing. The schema
    is `schema_file`, else `<file>.schema.json` beside it, else inferred from the first row. Returns the rows."""
    if not rows.is_file():
        raise DataError(f"{rows} is not a file")
    project, dataset, table = split_bq(uri, 3)
    if schema_file is None and rows.with_suffix(".schema.json").is_file():
        schema_file = rows.with_suffix(".schema.json")
    fields: list[dict[str, Any]] = json.loads(schema_file.read_text()) if schema_file else infer_schema(rows)
    make_dataset(url, uri, location)
    config = bigquery.LoadJobConfig(
        schema=[bigquery.SchemaField(f["name"], f["type"], f.get("mode", "NULLABLE")) for f in fields],
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
    )
    with rows.open("rb") as source:
        job = bigquery_client(url, project).load_table_from_file(
            source, f"{project}.{dataset}.{table}", job_config=config
        )
        job.result(retry=RETRY)
    return sum(1 for line in rows.open() if line.strip())


def read_table(url: str, uri: str, count: int) -> list[dict[str, Any]]:
    project, dataset, table = split_bq(uri, 3)
    client = bigquery_client(url, project)
    try:
        return [dict(row) for row in client.list_rows(f"{project}.{dataset}.{table}", max_results=count, retry=RETRY)]
    except exceptions.NotFound:
        raise DataError(f"{uri} does not exist") from None


# ---------------------------------------------------------------- the examples' inputs


def load_manifests(folder: pathlib.Path) -> list[tuple[pathlib.Path, dict[str, Any]]]:
    """Every BatchInferenceJob in the folder's YAML files, with its file."""
    manifests = []
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == api.KIND:
                manifests.append((path, document))
    return manifests


def place_example(gcs: storage.Client, bigquery_url: str, manifest: dict[str, Any], data: pathlib.Path) -> int:
    """Put an example's inputs in place (examples/data/<object name>, or <dataset>/<table>.jsonl) and create
    its output bucket or dataset, in the job's location; returns the number of requests."""
    spec = manifest["spec"]
    location = spec.get("location", DEFAULT_LOCATION)
    requests = 0
    output = spec["output"]
    if "bigquery" in output:
        make_dataset(bigquery_url, output["bigquery"].get("dataset") or output["bigquery"]["table"], location)
    else:
        make_bucket(gcs, output["gcs"]["uriPrefix"])
    if "bigquery" in spec["input"]:
        uri = spec["input"]["bigquery"]["table"]
        _, dataset, table = split_bq(uri, 3)
        rows = data / dataset / f"{table}.jsonl"
        if not rows.exists():
            raise FileNotFoundError(f"{uri} has no example data at {rows}")
        return load_table(bigquery_url, rows, uri, location=location)
    for uri in spec["input"]["gcs"]["uris"]:
        make_bucket(gcs, uri)
        local = data / split_gcs(uri)[1]
        if not local.exists():
            raise FileNotFoundError(f"{uri} has no example data at {local}")
        upload(gcs, local, uri)
        requests += sum(1 for line in local.open() if line.strip())
    return requests
