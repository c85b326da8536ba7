"""Validated string types of the API: URIs, model, project, location, labels.

Each is a pydantic type whose error says what the value should look like, and whose pattern goes into
the CRD's OpenAPI schema, so the cluster and the operator refuse the same values.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from .meta import OPERATOR_LABEL_PREFIX

# Patterns are written in the common subset of Python `re` and Go RE2 (what the apiserver uses).
BUCKET = r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"
GCS_OBJECT_URI_PATTERN = rf"^gs://{BUCKET}/.+$"
GCS_PREFIX_URI_PATTERN = rf"^gs://{BUCKET}(/.*)?$"
GCP_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
BQ_DATASET = r"[A-Za-z0-9_]{1,1024}"
BQ_TABLE = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,1023}"
BQ_TABLE_URI_PATTERN = rf"^bq://{GCP_PROJECT}\.{BQ_DATASET}\.{BQ_TABLE}$"
BQ_DATASET_URI_PATTERN = rf"^bq://{GCP_PROJECT}\.{BQ_DATASET}$"
PROJECT_PATTERN = rf"^{GCP_PROJECT}$"
LOCATION_PATTERN = r"^[a-z]+(-[a-z0-9]+)*$"
_MODEL_ID = r"[a-z0-9][a-z0-9._-]{0,127}"
MODEL_PATTERN = (
    rf"^({_MODEL_ID}"
    rf"|publishers/google/models/{_MODEL_ID}"
    rf"|projects/[a-z0-9-]{{1,63}}/locations/[a-z0-9-]{{1,63}}/publishers/google/models/{_MODEL_ID}"
    r"|projects/[a-z0-9-]{1,63}/locations/[a-z0-9-]{1,63}/models/[A-Za-z0-9_-]{1,128}(@[A-Za-z0-9_-]{1,128})?)$"
)
LABEL_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_VALUE_PATTERN = r"^[a-z0-9_-]{0,63}$"
URI_MAX_LENGTH = 2048
MAX_INPUT_URIS = 100


def _checker(pattern: str, what: str) -> Any:
    """Build a validator whose message says what the value should look like, not just a regex."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _string(pattern: str, what: str, max_length: int, description: str) -> Any:
    return Annotated[
        str,
        _checker(pattern, what),
        Field(max_length=max_length, description=description, json_schema_extra={"pattern": pattern}),
    ]


GcsObjectUri = _string(
    GCS_OBJECT_URI_PATTERN,
    "a Cloud Storage object URI of the form gs://bucket/path/file.jsonl",
    URI_MAX_LENGTH,
    "A JSONL file in Cloud Storage, gs://bucket/path/file.jsonl; `*` wildcards are expanded by Vertex.",
)
GcsPrefixUri = _string(
    GCS_PREFIX_URI_PATTERN,
    "a Cloud Storage URI of the form gs://bucket/prefix/",
    URI_MAX_LENGTH,
    "Cloud Storage prefix under which Vertex creates a prediction-model-<timestamp>/ directory.",
)
BigQueryTableUri = _string(
    BQ_TABLE_URI_PATTERN,
    "a BigQuery table URI of the form bq://project.dataset.table",
    URI_MAX_LENGTH,
    "A BigQuery table, bq://project.dataset.table.",
)
BigQueryDatasetUri = _string(
    BQ_DATASET_URI_PATTERN,
    "a BigQuery dataset URI of the form bq://project.dataset",
    URI_MAX_LENGTH,
    "A BigQuery dataset, bq://project.dataset; Vertex creates a predictions_<timestamp> table in it.",
)
ModelName = _string(
    MODEL_PATTERN,
    "a model name: a short id such as gemini-2.5-flash, publishers/google/models/<id>, "
    "projects/<p>/locations/<l>/publishers/google/models/<id>, or a tuned model "
    "projects/<p>/locations/<l>/models/<id>[@version]",
    512,
    "Gemini model: gemini-2.5-flash, publishers/google/models/<id>, or a tuned model resource name.",
)
ProjectId = _string(
    PROJECT_PATTERN,
    "a Google Cloud project id (6-30 lowercase letters, digits or hyphens, starting with a letter)",
    30,
    "Google Cloud project of the Vertex job. Default: the Namespace annotation "
    "batchinference.dev/project, then the operator's default.",
)
Location = _string(
    LOCATION_PATTERN,
    "a Google Cloud location such as us-central1 or global",
    63,
    "Vertex location of the job. Default: the Namespace annotation batchinference.dev/location, "
    "then the operator's default.",
)
LabelValue = _string(
    LABEL_VALUE_PATTERN,
    "a valid label value (at most 63 lowercase letters, digits, '_' or '-')",
    63,
    "Label value.",
)


def check_label_keys(labels: dict[str, str]) -> dict[str, str]:
    key_pattern = re.compile(LABEL_KEY_PATTERN)
    for key in labels:
        if not key_pattern.match(key):
            raise ValueError(
                f"label key {key!r} is invalid: it must start with a lowercase letter and hold at most "
                "63 lowercase letters, digits, '_' or '-'"
            )
        if key.startswith(OPERATOR_LABEL_PREFIX):
            raise ValueError(
                f"label key {key!r} is reserved: keys starting with {OPERATOR_LABEL_PREFIX!r} belong to the operator"
            )
    return labels
