"""Cloud Storage and BigQuery locations, parsed once into small values instead of re-split as strings."""

from __future__ import annotations

from dataclasses import dataclass

GCS_SCHEME = "gs://"
BQ_SCHEME = "bq://"
PREDICTIONS_FILE = "predictions.jsonl"  # the file Vertex writes in a job's GCS output directory


@dataclass(frozen=True)
class GcsUri:
    bucket: str
    name: str  # the object name or prefix; may be empty (the whole bucket)

    @classmethod
    def parse(cls, uri: str) -> GcsUri:
        bucket, _, name = uri.removeprefix(GCS_SCHEME).partition("/")
        return cls(bucket, name)

    def __str__(self) -> str:
        return f"{GCS_SCHEME}{self.bucket}/{self.name}"


@dataclass(frozen=True)
class BigQueryUri:
    """bq://project.dataset or bq://project.dataset.table."""

    project: str
    dataset: str
    table: str | None = None

    @classmethod
    def parse(cls, uri: str) -> BigQueryUri:
        parts = uri.removeprefix(BQ_SCHEME).split(".", 2)
        return cls(parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else None)

    @property
    def dataset_id(self) -> str:
        """`project.dataset`, as the BigQuery client names a dataset."""
        return f"{self.project}.{self.dataset}"

    @property
    def table_id(self) -> str:
        """`project.dataset.table` (or the dataset id when no table is named)."""
        return f"{self.dataset_id}.{self.table}" if self.table else self.dataset_id

    @property
    def dataset_uri(self) -> str:
        return f"{BQ_SCHEME}{self.dataset_id}"

    def __str__(self) -> str:
        return f"{BQ_SCHEME}{self.table_id}"


def is_bigquery(uri: str) -> bool:
    return uri.startswith(BQ_SCHEME)


def is_gcs(uri: str) -> bool:
    return uri.startswith(GCS_SCHEME)


def predictions_file(output_directory: str) -> str:
    """The rows of a job that wrote to Cloud Storage."""
    return f"{output_directory}/{PREDICTIONS_FILE}"


def under_prefix(uri: str, prefix: str) -> bool:
    """A prefix is a folder: gs://bucket/team-a covers gs://bucket/team-a/... (and that exact object), never
    gs://bucket/team-a-other/; gs://bucket covers the whole bucket, never gs://bucket-2."""
    folder = prefix.rstrip("/") + "/"
    return uri.startswith(folder) or uri.rstrip("/") == prefix.rstrip("/")
