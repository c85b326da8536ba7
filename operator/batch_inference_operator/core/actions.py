"""What a decision asks the controller to do, and the Events it posts: plain values, performed elsewhere."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal

from ..api import BatchInferenceJobSpec, BatchInferenceJobStatus
from ..api.spec import DEFAULT_KEY_FIELD, MAX_BYTES_PER_FILE, MAX_REQUESTS_PER_JOB
from .ledger import Shard
from .vertex_jobs import JobRequest


@dataclass(frozen=True)
class SubmitJob:
    """Find this attempt's job by its labels and adopt it, or create it."""

    attempt: int
    request: JobRequest
    identity_labels: dict[str, str]  # at most one job carries these: this resource's uid and attempt
    # For the first attempt: labels of a finished job of an earlier resource with the same namespace,
    # name and spec (re-created by GitOps), which is adopted instead of paying again.
    adopt_labels: dict[str, str] | None = None
    marker: datetime.datetime | None = None  # the attempt's `submitting` marker this submit acts on


@dataclass(frozen=True)
class RunPreflight:
    """Check the input against Vertex's rules (JSONL files streamed; a BigQuery table by its metadata),
    and a BigQuery output's dataset (exists, in the job's region)."""

    uris: tuple[str, ...]
    location: str
    project: str
    bigquery_output: str | None = None
    gcs_output: str | None = None  # an output uriPrefix: its bucket must exist, in a compatible location
    key_field: str = DEFAULT_KEY_FIELD
    max_rows: int = MAX_REQUESTS_PER_JOB  # per shard: an input over either limit is split into shards
    max_bytes: int = MAX_BYTES_PER_FILE


def preflight_of(spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus) -> RunPreflight:
    """Check the input, and the output's bucket or dataset, in the job's project and location."""
    sharding = spec.sharding
    return RunPreflight(
        tuple(spec.input.uris()),
        status.location or "",
        status.project or "",
        bigquery_output=spec.output.bigquery.uri() if spec.output.bigquery else None,
        gcs_output=spec.output.gcs.uri_prefix if spec.output.gcs else None,
        key_field=spec.input.key,
        max_rows=sharding.max_requests_per_shard if sharding else MAX_REQUESTS_PER_JOB,
        max_bytes=sharding.max_bytes_per_shard if sharding else MAX_BYTES_PER_FILE,
    )


@dataclass(frozen=True)
class ScanOutput:
    """Stream a finished attempt's output: token usage and which rows failed how. With `missing_uri`, also
    join it to the input by key and write the input rows it lacks there (the next attempt's extra input)."""

    attempt: int
    output_location: str
    inputs: tuple[str, ...] = ()
    key_field: str = "key"
    missing_uri: str | None = None


@dataclass(frozen=True)
class WriteManifest:
    """Write the results manifest of a finished resource: every input row of every shard, by key, with its
    outcome and where its answer is."""

    uri: str  # gs://.../results-manifest.jsonl, or bq://project.dataset.table
    shards: tuple[Shard, ...]
    key_field: str
    project: str
    location: str


@dataclass(frozen=True)
class CancelJob:
    attempt: int
    project: str
    location: str
    job_name: str


Action = SubmitJob | RunPreflight | ScanOutput | WriteManifest | CancelJob


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Decision:
    status: BatchInferenceJobStatus
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # Seconds until the decision may come out differently with nothing else happening (a backoff, a
    # settle window, a resume delay); None: only an event (a watch event, a poll result) changes it.
    requeue_after: float | None = None
