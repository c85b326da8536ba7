"""The create call's body, read and checked as Vertex's front end does before any job exists.

This is the one place a `batchPredictionJobs.create` body is interpreted: the engine receives a
`JobRequest` of checked values and never looks into the raw JSON. Checks run in Vertex's order
(display name, model, input and output configs, labels) so the first problem is the one reported,
as an `ApiError` (400, or 404 for a publisher model the service does not offer).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from . import bigquery as bq
from . import protojson
from .errors import ApiError

MAX_DISPLAY_NAME = 128
MAX_LABEL_CHARS = 64  # Unicode code points, keys and values alike (the API's field description)
MAX_LABELS = 64
# Documented fields Gemini batch jobs do not take: custom-model resources, explanations, a custom
# service account and CMEK ("Custom service accounts and CMEK aren't supported").
UNSUPPORTED = (
    "unmanagedContainerModel",
    "instanceConfig",
    "modelParameters",
    "dedicatedResources",
    "serviceAccount",
    "manualBatchTuningParameters",
    "generateExplanation",
    "explanationSpec",
    "encryptionSpec",
    "disableContainerLogging",
    "endpoint",  # v1beta1
    "modelMonitoringConfig",  # v1beta1
)
PUBLISHER_MODEL = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/([^/@]+)$")
TUNED_MODEL = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[A-Za-z0-9_-]+(?:@[A-Za-z0-9_-]+)?$")


@dataclass(frozen=True)
class JobRequest:
    """A checked create body: what a new job is made of."""

    display_name: str
    model: str  # as the caller named it
    model_id: str  # the model that runs the rows
    input_config: dict[str, Any]
    output_config: dict[str, Any]
    labels: dict[str, str]


def parse_create_body(body: Any, models: Collection[str], version: str = "v1") -> JobRequest:
    """Check a create body of API `version`; `models` are the publisher models the service offers."""
    job = protojson.parse(body, "BatchPredictionJob", "batch_prediction_job", version)
    display_name = job.get("displayName", "")
    if not display_name:
        raise protojson.invalid(
            "batch_prediction_job.display_name",
            "Required field is not set.",
            "List of found errors:\t1.Field: batch_prediction_job.display_name; Message: Required field is not set.",
        )
    if len(display_name) > MAX_DISPLAY_NAME:
        raise protojson.invalid(
            "batch_prediction_job.display_name",
            f"The display name may hold at most {MAX_DISPLAY_NAME} characters; it holds {len(display_name)}.",
        )
    for field in UNSUPPORTED:
        if field in job:
            raise protojson.invalid(
                f"batch_prediction_job.{protojson.snake(field)}",
                f"{field} is not supported for Gemini batch prediction.",
            )
    model = job.get("model", "")
    model_id = resolve_model(model, models)
    input_config = job.get("inputConfig", {})
    output_config = job.get("outputConfig", {})
    check_io(input_config, output_config)
    labels = job.get("labels", {})
    check_labels(labels)
    return JobRequest(
        display_name=display_name,
        model=model,
        model_id=model_id,
        input_config=input_config,
        output_config=output_config,
        labels=dict(labels),
    )


def resolve_model(model: str, models: Collection[str]) -> str:
    """The id of the model a job names: a tuned model's own id, or an offered publisher model's."""
    if not model:
        raise ApiError(
            400, "List of found errors:\t1.Field: batch_prediction_job.model; Message: Required field is not set."
        )
    if TUNED_MODEL.match(model):
        return model.rsplit("/", 1)[-1]
    match = PUBLISHER_MODEL.match(model)
    if not match:
        raise ApiError(400, f"Invalid model name: {model}.")
    if match.group(1) not in models:
        raise ApiError(404, f"The PublisherModel {match.group(1)} does not exist.")
    return match.group(1)


def check_io(input_config: dict[str, Any], output_config: dict[str, Any]) -> None:
    """Formats and URIs of the input and output: JSONL in Cloud Storage, or BigQuery."""
    gcs: list[Any] = []
    if "bigquerySource" in input_config:
        table = input_config["bigquerySource"].get("inputUri")
        if input_config.get("instancesFormat") != "bigquery" or not table:
            raise ApiError(400, 'inputConfig needs instancesFormat "bigquery" and bigquerySource.inputUri.')
        check_bigquery_uri(table, table_required=True)
    else:
        uris = input_config.get("gcsSource", {}).get("uris")
        if input_config.get("instancesFormat") != "jsonl" or not uris:
            raise ApiError(400, 'inputConfig needs instancesFormat "jsonl" and gcsSource.uris.')
        gcs += uris
    if "bigqueryDestination" in output_config:
        target = output_config["bigqueryDestination"].get("outputUri")
        if output_config.get("predictionsFormat") != "bigquery" or not target:
            raise ApiError(400, 'outputConfig needs predictionsFormat "bigquery" and bigqueryDestination.outputUri.')
        if not (isinstance(target, str) and bq.project_only(target)):
            check_bigquery_uri(target, table_required=False)
    else:
        prefix = output_config.get("gcsDestination", {}).get("outputUriPrefix")
        if output_config.get("predictionsFormat") != "jsonl" or not prefix:
            raise ApiError(400, 'outputConfig needs predictionsFormat "jsonl" and gcsDestination.outputUriPrefix.')
        gcs.append(prefix)
    for uri in gcs:
        if not isinstance(uri, str) or not uri.startswith("gs://") or len(uri) < 8:
            raise ApiError(400, f"Invalid Cloud Storage URI: {uri!r}.")


def check_bigquery_uri(uri: Any, table_required: bool) -> None:
    """A `bq://project.dataset.table` URI (the table optional where `table_required` is false)."""
    try:
        path = bq.BqPath.parse(uri) if isinstance(uri, str) else None
    except ValueError:
        path = None
    if path is None or (table_required and path.table is None):
        shape = "bq://project.dataset.table" if table_required else "bq://project[.dataset[.table]]"
        raise ApiError(400, f"Invalid BigQuery URI: {uri!r}; expected {shape}.")


def _label_char(char: str) -> bool:
    """Lowercase letters (international ones too, and letters without case), digits, `_` and `-`."""
    return char in "_-" or char.isdigit() or (char.isalpha() and not char.isupper() and not char.istitle())


def check_labels(labels: dict[str, str]) -> None:
    """At most 64 labels; keys and values as the API describes them: at most 64 code points of
    lowercase letters (international characters allowed), digits, `_` and `-`; a key is not empty
    and starts with a letter."""
    if len(labels) > MAX_LABELS:
        raise protojson.invalid("batch_prediction_job.labels", f"At most {MAX_LABELS} labels; found {len(labels)}.")
    for key, value in labels.items():
        problem = None
        if not key or not key[0].isalpha() or not _label_char(key[0]):
            problem = "a label key must start with a lowercase letter"
        elif len(key) > MAX_LABEL_CHARS or len(value) > MAX_LABEL_CHARS:
            problem = f"label keys and values may hold at most {MAX_LABEL_CHARS} characters"
        elif not all(map(_label_char, key + value)):
            problem = "label keys and values may hold only lowercase letters, digits, '_' and '-'"
        if problem:
            where = f"batch_prediction_job.labels[{key}]"
            raise protojson.invalid(where, f"Invalid label {key!r}: {value!r}: {problem}.")
