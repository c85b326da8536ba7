"""The BatchInferenceJob API (`batchinference.dev/v1alpha1`): the single source of truth.

The pydantic models validate manifests in the operator, and `crd.py` turns the very same models into
the CRD's OpenAPI schema, so a rule written once holds on the cluster and in the operator alike.
Bounds and enums are schema constraints; the checks of strings (URIs, model, project, location,
labels: `fields.py`) and cross-field rules are CEL `x-kubernetes-validations` with a readable message
(`cel.py`), never a bare `pattern` whose regex the apiserver would show the user. `messages.py` words
pydantic's errors as the apiserver does. No I/O here.
"""

from .base import ApiModel
from .meta import (
    CATEGORIES,
    FINALIZER,
    GROUP,
    JOB_DEFINING_FIELDS,
    KIND,
    MAX_USER_LABELS,
    PLURAL,
    RERUN_ANNOTATION,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from .spec import (
    BatchInferenceJobSpec,
    BigQueryInput,
    BigQueryOutput,
    GcsInput,
    GcsOutput,
    InputSpec,
    OutputSpec,
    ResumeSpec,
    StallSpec,
    format_validation_error,
    parse_spec,
)
from .status import (
    TERMINAL_PHASES,
    Attempt,
    BatchInferenceJobStatus,
    CompletionStats,
    Condition,
    JobError,
    JobRef,
    Phase,
    PreflightReport,
    Rerun,
    RowCounts,
    RowError,
    Shard,
    Usage,
)

__all__ = [
    "CATEGORIES",
    "FINALIZER",
    "GROUP",
    "JOB_DEFINING_FIELDS",
    "KIND",
    "MAX_USER_LABELS",
    "PLURAL",
    "RERUN_ANNOTATION",
    "SHORT_NAMES",
    "SINGULAR",
    "TERMINAL_PHASES",
    "VERSION",
    "ApiModel",
    "Attempt",
    "BatchInferenceJobSpec",
    "BatchInferenceJobStatus",
    "BigQueryInput",
    "BigQueryOutput",
    "CompletionStats",
    "Condition",
    "GcsInput",
    "GcsOutput",
    "InputSpec",
    "JobError",
    "JobRef",
    "OutputSpec",
    "Phase",
    "PreflightReport",
    "Rerun",
    "ResumeSpec",
    "RowCounts",
    "RowError",
    "Shard",
    "StallSpec",
    "Usage",
    "format_validation_error",
    "parse_spec",
]
