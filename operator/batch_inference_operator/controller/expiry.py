"""spec.ttlSecondsAfterFinished: a finished resource is deleted once its TTL has passed (core/expiry.py says
when). The finalizer then lets it go at once: a finished job needs no cancel."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import kopf

from ..core.expiry import expires_at, expiry_message
from ..core.identity import Resource
from .kube import StatusConflict, WriteFailed
from .runtime import Runtime

log = logging.getLogger("batch_inference_operator")


def _time(text: object) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class TtlCheck:
    done: bool  # this turn is over: deleted, or the delete failed and is tried again after `again_in`
    again_in: float | None  # seconds until the TTL passes (or until the retry); None: no TTL applies


async def expire(runtime: Runtime, body: kopf.Body, resource: Resource) -> TtlCheck:
    """Delete the resource if its TTL after finishing has passed; else say when it will."""
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
    ttl = spec.get("ttlSecondsAfterFinished")
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        return TtlCheck(False, None)
    due = expires_at(
        ttl, status.get("phase"), _time(status.get("completionTime")), _time(meta.get("creationTimestamp"))
    )
    if due is None:
        return TtlCheck(False, None)
    if runtime.clock() < due:
        return TtlCheck(False, (due - runtime.clock()).total_seconds())
    kopf.event(body, type="Normal", reason="TTLExpired", message=expiry_message(ttl, due))
    try:
        await runtime.kube.delete_job(resource.namespace, resource.name, resource.uid)
    except (StatusConflict, WriteFailed) as error:
        log.warning("ttlSecondsAfterFinished: deleting %s failed: %s; trying again", resource.name, error)
        return TtlCheck(True, runtime.settings.retry_base)
    return TtlCheck(True, None)
