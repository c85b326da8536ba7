"""Status writes as JSON merge patches of what changed, and nothing when nothing did."""

from __future__ import annotations

import datetime
from typing import Any

from ..api import BatchInferenceJobStatus


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) turning `old` into `new`: nested objects merge on the server, so
    a key that disappears must be sent as null, or it survives and the status never matches."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    diff: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        diff[key] = None
    for key, value in new.items():
        if key not in old:
            diff[key] = value
        elif old[key] != value:
            diff[key] = merge_patch(old[key], value)
    return diff


def status_diff(old: dict[str, Any], new: BatchInferenceJobStatus) -> dict[str, Any]:
    """The patch for `.status` (kopf's own bookkeeping under `status.kopf` is left alone)."""
    return merge_patch({k: v for k, v in old.items() if k != "kopf"}, new.to_wire())


def internal_error_patch(old: dict[str, Any], message: str, now: datetime.datetime) -> dict[str, Any]:
    """The status patch after an unexpected error: the message and a Ready=False condition, built on the
    stored status as it is (it may not even parse), never touching attempts: losing a job's name could
    lead to paying for it twice."""
    conditions = [c for c in old.get("conditions") or [] if isinstance(c, dict) and c.get("type") != "Ready"]
    prior = next((c for c in old.get("conditions") or [] if isinstance(c, dict) and c.get("type") == "Ready"), {})
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    moved = prior.get("status") != "False"
    ready = {
        "type": "Ready",
        "status": "False",
        "reason": "InternalError",
        "message": message,
        "lastTransitionTime": stamp if moved else prior.get("lastTransitionTime", stamp),
    }
    return {"message": message, "conditions": [*conditions, ready]}
