"""Names of the BatchInferenceJob API and the operator's reserved labels: one list, limits derived from it.

Vertex allows 64 labels on a job and the operator stamps its own next to the user's, so the number of
user labels the schema admits is computed from `RESERVED_LABELS`; a new operator label cannot silently
break Vertex's limit.
"""

from __future__ import annotations

GROUP = "batchinference.dev"
VERSION = "v1alpha1"
KIND = "BatchInferenceJob"
PLURAL = "batchinferencejobs"
SINGULAR = "batchinferencejob"
SHORT_NAMES = ("bij",)
CATEGORIES = ("batchinference",)
FINALIZER = f"{GROUP}/finalizer"

# Namespace annotations: per-team defaults and data policy.
PROJECT_ANNOTATION = f"{GROUP}/project"
LOCATION_ANNOTATION = f"{GROUP}/location"
GCS_POLICY_ANNOTATION = f"{GROUP}/allowed-gcs-prefixes"
BQ_POLICY_ANNOTATION = f"{GROUP}/allowed-bigquery-datasets"
PROJECT_POLICY_ANNOTATION = f"{GROUP}/allowed-projects"
# A new value re-runs a finished job (core/rerun.py); the value last acted on is status.rerun.value.
RERUN_ANNOTATION = f"{GROUP}/rerun"

# A sharded resource's children (core/shards.py): Kubernetes labels on each child resource.
SHARD_OF_LABEL = f"{GROUP}/shard-of"  # the parent's name
SHARD_INDEX_LABEL = f"{GROUP}/shard-index"  # "00001"

# The labels the operator puts on every Vertex job (see core/identity.py for their values).
OPERATOR_LABEL_PREFIX = "bij-"
LABEL_MANAGED_BY = "bij-managed-by"
LABEL_UID = "bij-uid"
LABEL_ATTEMPT = "bij-attempt"
LABEL_NAMESPACE = "bij-namespace"
LABEL_NAME = "bij-name"
LABEL_SPEC_HASH = "bij-spec-hash"
LABEL_SHARD = "bij-shard"  # a shard's index ("00001") on the Vertex jobs of a child resource
RESERVED_LABELS = (
    LABEL_MANAGED_BY,
    LABEL_UID,
    LABEL_ATTEMPT,
    LABEL_NAMESPACE,
    LABEL_NAME,
    LABEL_SPEC_HASH,
    LABEL_SHARD,
)
VERTEX_MAX_LABELS = 64
MAX_USER_LABELS = VERTEX_MAX_LABELS - len(RESERVED_LABELS)

# Fields that define the Vertex job: immutable after creation (CEL rules), hashed into bij-spec-hash.
JOB_DEFINING_FIELDS = ("model", "project", "location", "input", "output")
OPTIONAL_JOB_FIELDS = ("project", "location")
# Also immutable, not hashed: how the input is cut (a parent's shards are planned once, from it).
IMMUTABLE_OPTIONAL_FIELDS = ("sharding",)
