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
from .errors import ApiError

LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
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


def parse_create_body(body: Any, models: Collection[str]) -> JobRequest:
    """Check a create body; `models` are the publisher models the service offers."""
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload: expected a BatchPredictionJob object.")
    display_name = body.get("displayName")
    if not display_name:
        raise ApiError(
            400,
            "List of found errors:\t1.Field: batch_prediction_job.display_name; Message: Required field is not set.",
        )
    model = body.get("model") or ""
    model_id = resolve_model(model, models)
    input_config = body.get("inputConfig") or {}
    output_config = body.get("outputConfig") or {}
    check_io(input_config, output_config)
    labels = body.get("labels") or {}
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
        shape = "bq://project.dataset.table" if table_required else "bq://project.dataset[.table]"
        raise ApiError(400, f"Invalid BigQuery URI: {uri!r}; expected {shape}.")


def check_labels(labels: Any) -> None:
    """At most 64 labels; keys and values as Google Cloud labels allow."""
    if not isinstance(labels, dict) or len(labels) > 64:
        raise ApiError(400, "labels must be a map of at most 64 entries.")
    for key, value in labels.items():
        if not LABEL_KEY.match(key) or not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise ApiError(
                400,
                f"Invalid label {key!r}: {value!r}. Keys and values may hold at most 63 lowercase "
                "letters, digits, '_' or '-', and keys must start with a letter.",
            )
