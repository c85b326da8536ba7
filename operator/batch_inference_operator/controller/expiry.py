"""spec.ttlSecondsAfterFinished: a finished resource is deleted once its TTL has passed (core/expiry.py says
when). The finalizer then lets it go at once: a finished job needs no cancel."""

from __future__ import annotations

import asyncio
import datetime
import logging

import kopf

from ..adapters.errors import AdapterError
from ..core.expiry import expires_at, expiry_message
from ..core.identity import Resource
from .runtime import Runtime

log = logging.getLogger("batch_inference_operator")


def _time(text: object) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def expire(runtime: Runtime, body: kopf.Body, resource: Resource) -> bool:
    """Delete the resource if its TTL after finishing has passed; True when this turn is over (deleted, or
    the delete failed and is tried again next turn)."""
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
    ttl = spec.get("ttlSecondsAfterFinished")
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        return False
    due = expires_at(
        ttl, status.get("phase"), _time(status.get("completionTime")), _time(meta.get("creationTimestamp"))
    )
    if due is None or runtime.clock() < due:
        return False
    kopf.event(body, type="Normal", reason="TTLExpired", message=expiry_message(ttl, due))
    try:
        await asyncio.to_thread(runtime.kube.delete_job, resource.namespace, resource.name, resource.uid)
    except AdapterError as error:
        log.warning("ttlSecondsAfterFinished: %s; trying again", error.message)
    return True
