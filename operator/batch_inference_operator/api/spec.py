"""BatchInferenceJobSpec and its parts, and `parse_spec`, which validates a manifest's spec as the CRD does."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from . import cel
from .base import ApiModel
from .fields import (
    LABEL_KEY_CHECKS,
    MAX_INPUT_URIS,
    BigQueryDatasetUri,
    BigQueryTableUri,
    Dollars,
    GcsObjectUri,
    GcsPrefixUri,
    KeyField,
    LabelValue,
    Location,
    ModelName,
    ProjectId,
    check_label_keys,
)
from .messages import format_validation_error
from .meta import IMMUTABLE_OPTIONAL_FIELDS, JOB_DEFINING_FIELDS, MAX_USER_LABELS, OPTIONAL_JOB_FIELDS


class OneOf(ApiModel):
    """A choice of two fields of which exactly one is set: the CEL rule comes from `cel.exactly_one`, the
    operator's check from the same `one_of`, so both say the same thing."""

    one_of: ClassVar[tuple[str, str, str]]  # the two fields, and where they are in the spec

    @classmethod
    def schema_rules(cls, a: str, b: str, where: str) -> ConfigDict:
        return ConfigDict(json_schema_extra=cel.exactly_one(a, b, where))

    @model_validator(mode="after")
    def _exactly_one(self) -> OneOf:
        a, b, where = self.one_of
        if (getattr(self, a) is None) == (getattr(self, b) is None):
            raise ValueError(f"exactly one of {where}.{a} or {where}.{b} must be set")
        return self


def check_unique(uris: list[str]) -> list[str]:
    """A file listed twice would be read, run and billed twice in one job. Worded and placed as the
    apiserver says it for `x-kubernetes-list-type: set`: `uris[2]: Duplicate value: "..."`."""
    problems = [
        InitErrorDetails(
            type=PydanticCustomError(
                "value_error",
                "Duplicate value: {uri}: each file is listed once "
                "(Vertex would run and bill its requests once per listing)",
                {"uri": json.dumps(uri)},
            ),
            loc=(index,),
            input=uri,
        )
        for index, uri in enumerate(uris)
        if uri in uris[:index]
    ]
    if problems:
        raise ValidationError.from_exception_data("uris", problems)
    return uris


class GcsInput(ApiModel):
    uris: Annotated[list[GcsObjectUri], AfterValidator(check_unique)] = Field(
        min_length=1,
        max_length=MAX_INPUT_URIS,
        description="JSONL input files, each listed once.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class BigQueryInput(ApiModel):
    table: BigQueryTableUri = Field(description="Table with a `request` JSON column; other columns are passed through.")


DEFAULT_KEY_FIELD = "key"


class InputSpec(OneOf):
    """Exactly one input kind."""

    one_of = ("gcs", "bigquery", "spec.input")
    model_config = OneOf.schema_rules(*one_of)

    gcs: GcsInput | None = None
    bigquery: BigQueryInput | None = None
    # None reads as "key"; unset stays unset on the wire, so the spec hash of existing resources holds.
    key_field: KeyField | None = None

    @property
    def key(self) -> str:
        return self.key_field or DEFAULT_KEY_FIELD

    def uris(self) -> list[str]:
        return list(self.gcs.uris) if self.gcs else [self.bigquery.table]  # type: ignore[union-attr]


class GcsOutput(ApiModel):
    uri_prefix: GcsPrefixUri


class BigQueryOutput(OneOf):
    """A dataset (Vertex creates a table in it) or an explicit table: exactly one."""

    one_of = ("dataset", "table", "spec.output.bigquery")
    model_config = OneOf.schema_rules(*one_of)

    dataset: BigQueryDatasetUri | None = None
    table: BigQueryTableUri | None = None

    def uri(self) -> str:
        return self.table or self.dataset  # type: ignore[return-value]


class OutputSpec(OneOf):
    """Exactly one output kind."""

    one_of = ("gcs", "bigquery", "spec.output")
    model_config = OneOf.schema_rules(*one_of)

    gcs: GcsOutput | None = None
    bigquery: BigQueryOutput | None = None

    def uri(self) -> str:
        return self.gcs.uri_prefix if self.gcs else self.bigquery.uri()  # type: ignore[union-attr]


# Vertex's limits per job and per input file; `spec.sharding` may only lower them.
MAX_REQUESTS_PER_JOB = 200_000
MAX_BYTES_PER_FILE = 1_000_000_000


class ShardingSpec(ApiModel):
    """Limits of one shard: an input over them (or over Vertex's own) is split into shards, one Vertex job each."""

    max_requests_per_shard: int = Field(
        default=MAX_REQUESTS_PER_JOB, ge=1, le=MAX_REQUESTS_PER_JOB, description="Requests per shard at most."
    )
    max_bytes_per_shard: int = Field(
        default=MAX_BYTES_PER_FILE,
        ge=1 << 20,
        le=MAX_BYTES_PER_FILE,
        description="Bytes per shard file at most (Cloud Storage inputs).",
    )


RetryFailedRequests = Literal["Transient", "All", "Never"]


class ResumeSpec(ApiModel):
    """How unfinished work is resumed: each attempt is a new Vertex job fed the previous output."""

    max_attempts: int = Field(default=3, ge=1, le=10, description="Vertex jobs at most, the first included.")
    backoff_seconds: int = Field(default=60, ge=0, le=86400, description="Wait before the next attempt.")
    retry_failed_requests: RetryFailedRequests = Field(
        default="Transient",
        description="Failed rows of a finished attempt to retry: Transient (429, 5xx, internal), All, or Never.",
    )


class StallSpec(ApiModel):
    """When a job counts as stalled: waiting in Vertex's queue, or running without progress, too long."""

    queued_after_seconds: int | None = Field(
        default=None,
        ge=60,
        le=259200,
        description="Stalled when the Vertex job waits this long before it runs (default: the operator's, 12 h; "
        "Vertex expires queued jobs at 72 h).",
    )
    running_after_seconds: int | None = Field(
        default=None,
        ge=60,
        le=259200,
        description="Stalled when a running job's completion counts do not move for this long (default: the "
        "operator's, 6 h).",
    )
    action: Literal["Report", "Resubmit"] = Field(
        default="Report",
        description="Report: condition Stalled and a Warning Event. Resubmit: also cancel a job that never "
        "started and submit it again (a new attempt).",
    )


# Fields that only preflight acts on: set with preflight Disabled, they would be silently ignored.
NEEDS_PREFLIGHT = {
    "maxEstimatedCostUSD": "the estimate is made by preflight",
    "sharding": "an input is split into shards by preflight",
}


def _needs_preflight(field: str, why: str) -> dict[str, str]:
    return cel.rule(
        f"!has(self.{field}) || !has(self.preflight) || self.preflight == 'Enabled'",
        f"spec.{field} needs spec.preflight: Enabled ({why})",
        field_path=f".{field}",
    )


class BatchInferenceJobSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel.validations(
            *(cel.immutable(f, f in OPTIONAL_JOB_FIELDS) for f in JOB_DEFINING_FIELDS),
            *(cel.immutable(f, optional=True) for f in IMMUTABLE_OPTIONAL_FIELDS),
            *(_needs_preflight(field, why) for field, why in NEEDS_PREFLIGHT.items()),
        )
    )

    model: ModelName
    project: ProjectId | None = None
    location: Location | None = None
    input: InputSpec
    output: OutputSpec
    display_name: str | None = Field(
        default=None, min_length=1, max_length=128, description='Vertex job display name; default "<namespace>-<name>".'
    )
    labels: Annotated[dict[str, LabelValue], AfterValidator(check_label_keys)] = Field(
        default_factory=dict,
        max_length=MAX_USER_LABELS,
        description="Copied to the Vertex job next to the operator's own bij-* labels.",
        json_schema_extra=cel.key_rules(LABEL_KEY_CHECKS),
    )
    preflight: Literal["Enabled", "Disabled"] = Field(
        default="Enabled", description="Validate the JSONL input before submitting."
    )
    sharding: ShardingSpec | None = Field(
        default=None,
        description="Lower limits per shard. An input over Vertex's limits (200,000 requests per job, 1 GB per "
        "file) is split into shards without this too.",
    )
    max_estimated_cost_usd: Dollars | None = Field(
        default=None,
        alias="maxEstimatedCostUSD",
        description="Refuse the job before anything is submitted when preflight estimates it costs more "
        "(status.estimate).",
    )
    resume: ResumeSpec = Field(default_factory=ResumeSpec, json_schema_extra={"default": {}})

    @field_validator("sharding", "max_estimated_cost_usd")
    @classmethod
    def _needs_preflight(cls, value: Any, info: ValidationInfo) -> Any:
        """Placed at the field, as the CRD's rule is (its fieldPath)."""
        field = "sharding" if info.field_name == "sharding" else "maxEstimatedCostUSD"
        if value is not None and info.data.get("preflight") == "Disabled":
            raise ValueError(f"spec.{field} needs spec.preflight: Enabled ({NEEDS_PREFLIGHT[field]})")
        return value

    stall: StallSpec = Field(default_factory=StallSpec, json_schema_extra={"default": {}})
    deletion_policy: Literal["Cancel", "Abandon"] = Field(
        default="Cancel", description="What happens to a running Vertex job when this resource is deleted."
    )
    suspend: bool = Field(default=False, description="Hold before submit; cancel a running job and resume it later.")
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the resource this long after it finished (outputs are kept)."
    )


def parse_spec(spec: dict[str, Any]) -> BatchInferenceJobSpec:
    """Validate a manifest's spec; raise `ValueError` with field-named messages.

    Strict: a string is not a boolean and a float is not an integer, as in the CRD's schema. Only the
    wire names count: `display_name` is an unknown field to the cluster, so it is one here too.
    """
    try:
        return BatchInferenceJobSpec.model_validate(spec, strict=True, by_alias=True, by_name=False)
    except ValidationError as error:
        raise ValueError(format_validation_error(error, model=BatchInferenceJobSpec)) from None
