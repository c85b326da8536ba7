"""The BatchInferenceJob API (`batchinference.dev/v1alpha1`): the single source of truth.

The pydantic models here validate manifests in the operator, and `crd.py` turns the very same
models into the CRD's OpenAPI schema, so a rule written once holds on the cluster and in the
operator alike. Constraints the OpenAPI schema can express (patterns, bounds, enums) are declared as
schema constraints; a few cross-field rules become CEL `x-kubernetes-validations` in `crd.py`.

This module imports neither kopf nor any Google client (an import-linter contract checks it).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

GROUP = "batchinference.dev"
VERSION = "v1alpha1"
KIND = "BatchInferenceJob"
PLURAL = "batchinferencejobs"
SINGULAR = "batchinferencejob"
SHORT_NAMES = ["bij"]
CATEGORIES = ["batchinference"]
API_VERSION = f"{GROUP}/{VERSION}"

# Vertex allows 64 labels on a job; the operator stamps its own `bij-*` labels next to the user's.
OPERATOR_LABEL_PREFIX = "bij-"
OPERATOR_LABEL_COUNT = 6
MAX_USER_LABELS = 64 - OPERATOR_LABEL_COUNT

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


def _check_label_keys(labels: dict[str, str]) -> dict[str, str]:
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


class ApiModel(BaseModel):
    """Shared config: camelCase on the wire, unknown fields refused (as kubectl's strict validation does)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------- spec


class GcsInput(ApiModel):
    uris: list[GcsObjectUri] = Field(min_length=1, max_length=MAX_INPUT_URIS, description="JSONL input files.")


class BigQueryInput(ApiModel):
    table: BigQueryTableUri = Field(description="Table with a `request` JSON column; other columns are passed through.")


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `crd.py` copies these into the CRD unchanged."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def _cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def _exactly_one_rule(a: str, b: str, where: str) -> dict[str, Any]:
    return _cel_rules(cel(f"has(self.{a}) != has(self.{b})", f"exactly one of {where}.{a} or {where}.{b} must be set"))


class InputSpec(ApiModel):
    """Exactly one input kind."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_rule("gcs", "bigquery", "spec.input"))

    gcs: GcsInput | None = None
    bigquery: BigQueryInput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputSpec:
        if (self.gcs is None) == (self.bigquery is None):
            raise ValueError("exactly one of input.gcs or input.bigquery must be set")
        return self

    def uris(self) -> list[str]:
        return list(self.gcs.uris) if self.gcs else [self.bigquery.table]  # type: ignore[union-attr]


class GcsOutput(ApiModel):
    uri_prefix: GcsPrefixUri


class BigQueryOutput(ApiModel):
    """A dataset (Vertex creates a table in it) or an explicit table: exactly one."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_rule("dataset", "table", "spec.output.bigquery"))

    dataset: BigQueryDatasetUri | None = None
    table: BigQueryTableUri | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BigQueryOutput:
        if (self.dataset is None) == (self.table is None):
            raise ValueError("exactly one of output.bigquery.dataset or output.bigquery.table must be set")
        return self

    def uri(self) -> str:
        return self.table or self.dataset  # type: ignore[return-value]


class OutputSpec(ApiModel):
    """Exactly one output kind."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_rule("gcs", "bigquery", "spec.output"))

    gcs: GcsOutput | None = None
    bigquery: BigQueryOutput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> OutputSpec:
        if (self.gcs is None) == (self.bigquery is None):
            raise ValueError("exactly one of output.gcs or output.bigquery must be set")
        return self

    def uri(self) -> str:
        return self.gcs.uri_prefix if self.gcs else self.bigquery.uri()  # type: ignore[union-attr]


RetryFailedRequests = Literal["Transient", "All", "Never"]


class ResumeSpec(ApiModel):
    """How unfinished work is resumed: each attempt is a new Vertex job fed the previous output."""

    max_attempts: int = Field(default=3, ge=1, le=10, description="Vertex jobs at most, the first included.")
    backoff_seconds: int = Field(default=60, ge=0, le=86400, description="Wait before the next attempt.")
    retry_failed_requests: RetryFailedRequests = Field(
        default="Transient",
        description="Failed rows of a finished attempt to retry: Transient (429, 5xx, internal), All, or Never.",
    )


def _immutable(field: str, optional: bool = False) -> dict[str, str]:
    rule = f"self.{field} == oldSelf.{field}"
    if optional:
        rule = f"has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || {rule})"
    return cel(
        rule,
        f"spec.{field} is immutable: it defines the Vertex job; create a new BatchInferenceJob instead",
        field_path=f".{field}",
        reason="FieldValueForbidden",
    )


# Fields that define the Vertex job: immutable after creation (CEL rules), hashed into bij-spec-hash.
JOB_DEFINING_FIELDS = ("model", "project", "location", "input", "output")
_OPTIONAL_JOB_FIELDS = ("project", "location")


class BatchInferenceJobSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=_cel_rules(*(_immutable(f, f in _OPTIONAL_JOB_FIELDS) for f in JOB_DEFINING_FIELDS))
    )

    model: ModelName
    project: ProjectId | None = None
    location: Location | None = None
    input: InputSpec
    output: OutputSpec
    display_name: str | None = Field(
        default=None, min_length=1, max_length=128, description='Vertex job display name; default "<namespace>-<name>".'
    )
    labels: Annotated[dict[str, LabelValue], AfterValidator(_check_label_keys)] = Field(
        default_factory=dict,
        max_length=MAX_USER_LABELS,
        description="Copied to the Vertex job next to the operator's own bij-* labels.",
        json_schema_extra=_cel_rules(
            cel(
                f"self.all(k, k.matches('{LABEL_KEY_PATTERN}'))",
                "label keys must start with a lowercase letter and hold at most 63 lowercase letters, "
                "digits, '_' or '-'",
            ),
            cel(
                f"self.all(k, !k.startsWith('{OPERATOR_LABEL_PREFIX}'))",
                f"label keys starting with '{OPERATOR_LABEL_PREFIX}' are reserved for the operator",
            ),
        ),
    )
    resume: ResumeSpec = Field(default_factory=ResumeSpec, json_schema_extra={"default": {}})
    preflight: Literal["Enabled", "Disabled"] = Field(
        default="Enabled", description="Validate the JSONL input before submitting."
    )
    deletion_policy: Literal["Cancel", "Abandon"] = Field(
        default="Cancel", description="What happens to a running Vertex job when this resource is deleted."
    )
    suspend: bool = Field(default=False, description="Hold before submit; cancel a running job and resume it later.")
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the resource this long after it finished (outputs are kept)."
    )


# ---------------------------------------------------------------- status

Phase = Literal[
    "Pending", "Queued", "Suspended", "Running", "Resuming", "Succeeded", "PartiallySucceeded", "Failed", "Cancelled"
]
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"})


class CompletionStats(ApiModel):
    successful: int = 0
    failed: int = 0
    incomplete: int = 0


class JobError(ApiModel):
    code: int
    message: str


class JobRef(ApiModel):
    """The Vertex job the resource currently follows."""

    name: str | None = None
    state: str | None = None
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    console_url: str | None = None


class RowCounts(ApiModel):
    """Rows of an attempt's output by outcome, read from the output itself."""

    succeeded: int = 0
    failed_transient: int = 0
    failed_permanent: int = 0
    incomplete: int = 0


class Attempt(ApiModel):
    """One Vertex job. Written with `submitting` before the create call; frozen once terminal."""

    attempt: int = Field(ge=1)
    job_name: str | None = None
    state: str | None = None
    submitting: datetime | None = Field(
        default=None, description="Set before the create call, cleared once the job is known."
    )
    input: list[str] = Field(default_factory=list)
    output_location: str | None = None
    completion_stats: CompletionStats | None = None
    rows: RowCounts | None = None
    error: JobError | None = None
    cancel_requested: bool | None = Field(default=None, description="The operator cancelled it (suspend).")
    start_time: datetime | None = None
    end_time: datetime | None = None


class PreflightReport(ApiModel):
    """What the input check saw: request count, and how many requests share a long prompt prefix."""

    requests: int = 0
    shared_prefix_requests: int | None = Field(
        default=None, description="Requests sharing a long prompt prefix; not counted for a BigQuery input."
    )
    files: int = 0
    bytes: int = 0


class Usage(ApiModel):
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    candidates_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0
    cache_hit_ratio: float = 0.0
    estimated_cost_usd: str | None = Field(default=None, alias="estimatedCostUSD")


class Condition(ApiModel):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class BatchInferenceJobStatus(ApiModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    project: str | None = None
    location: str | None = None
    job: JobRef | None = None
    attempt: int | None = Field(default=None, description="Number of the latest attempt (for the printer column).")
    attempts: list[Attempt] = Field(default_factory=list)
    completion_stats: CompletionStats | None = None
    output_location: str | None = None
    usage: Usage | None = None
    preflight: PreflightReport | None = None
    conditions: list[Condition] = Field(default_factory=list)
    message: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None


# ---------------------------------------------------------------- helpers


def format_validation_error(error: ValidationError, root: str = "spec") -> str:
    """One line per problem, each naming the field the way kubectl does: `spec.input.gcs.uris[0]: ...`."""
    lines = []
    for item in error.errors():
        path = root
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


def parse_spec(spec: dict[str, Any]) -> BatchInferenceJobSpec:
    """Validate a manifest's spec; raise `ValueError` with field-named messages.

    Strict: a string is not a boolean and a float is not an integer, as in the CRD's schema.
    """
    try:
        return BatchInferenceJobSpec.model_validate(spec, strict=True)
    except ValidationError as error:
        raise ValueError(format_validation_error(error)) from None


def check_update(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> BatchInferenceJobSpec:
    """The CRD's immutability rules, for clusters or paths where CEL did not run (defence in depth)."""
    old, new = parse_spec(old_spec), parse_spec(new_spec)
    changed = [name for name in JOB_DEFINING_FIELDS if getattr(old, name) != getattr(new, name)]
    if changed:
        raise ValueError(
            "; ".join(
                f"spec.{name}: is immutable: it defines the Vertex job; create a new BatchInferenceJob instead"
                for name in changed
            )
        )
    return new
