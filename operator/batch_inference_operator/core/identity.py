"""Who a Vertex job belongs to: the operator's labels on it, and the hash of what it computes.

Vertex's create has no request id, so these labels are how the operator finds a job it created before
a crash (uid + attempt), and how a resource re-created by GitOps finds its finished job (namespace,
name and spec hash).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from ..api import BatchInferenceJobSpec
from ..api.meta import (
    LABEL_ATTEMPT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_SHARD,
    LABEL_SPEC_HASH,
    LABEL_UID,
)

MANAGED_BY = "batch-inference-operator"


@dataclass(frozen=True)
class Resource:
    namespace: str
    name: str
    uid: str
    generation: int = 1
    rerun: str = ""  # the batchinference.dev/rerun annotation's value (core/rerun.py)
    shard: str = ""  # a shard's index ("00001") when this resource runs one shard of a parent (core/shards.py)


LABEL_VALUE_MAX = 63
_HASH_CHARS = 16


def label_value(name: str) -> str:
    """A Kubernetes name as a Vertex label value (at most 63 lowercase letters, digits, '_' or '-') that
    identifies the whole name: '.' becomes '_' (one-to-one, as names hold no '_'), and a longer value
    keeps its first 46 characters and ends in a hash of the whole name, so two names that share their
    first 63 characters never share a label, and so never a job."""
    value = re.sub(r"[^a-z0-9_-]", "_", name.lower())
    if len(value) <= LABEL_VALUE_MAX:
        return value
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_CHARS]
    return f"{value[: LABEL_VALUE_MAX - _HASH_CHARS - 1]}-{digest}"


def spec_hash(spec: BatchInferenceJobSpec, project: str, location: str) -> str:
    """Identifies what a job computes: model, where, input and output; not lifecycle settings."""
    defining = {
        "model": spec.model,
        "project": project,
        "location": location,
        # The key field names how results are joined back, not what the job computes.
        "input": {k: v for k, v in spec.input.to_wire().items() if k != "keyField"},
        "output": spec.output.to_wire(),
    }
    return hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:16]


def managed_labels() -> dict[str, str]:
    """Every job of this operator carries this label (the poller lists by it)."""
    return {LABEL_MANAGED_BY: MANAGED_BY}


def attempt_labels(uid: str, attempt: int) -> dict[str, str]:
    """The labels that name one attempt's job: there is at most one such job."""
    return {LABEL_UID: uid, LABEL_ATTEMPT: str(attempt)}


def owner_labels(uid: str) -> dict[str, str]:
    """Every job of one resource, whatever the attempt."""
    return {LABEL_UID: uid}


def recreated_labels(resource: Resource, digest: str) -> dict[str, str]:
    """Jobs of an earlier resource with the same namespace, name and spec (re-created by GitOps)."""
    return {
        LABEL_NAMESPACE: label_value(resource.namespace),
        LABEL_NAME: label_value(resource.name),
        LABEL_SPEC_HASH: digest,
    }


def operator_labels(resource: Resource, attempt: int, digest: str) -> dict[str, str]:
    shard = {LABEL_SHARD: label_value(resource.shard)} if resource.shard else {}
    return {
        **managed_labels(),
        **attempt_labels(resource.uid, attempt),
        **recreated_labels(resource, digest),
        **shard,
    }
