"""spec.ttlSecondsAfterFinished: when a finished resource is deleted (its outputs and Vertex job are kept).

Counted from the later of its completion and its creation: a resource re-created by GitOps that adopts a job
which finished long ago lives its full TTL too, instead of being deleted at once, again and again.
"""

from __future__ import annotations

import datetime

from ..api import TERMINAL_PHASES


def expires_at(
    ttl: int | None, phase: str | None, completed: datetime.datetime | None, created: datetime.datetime | None
) -> datetime.datetime | None:
    """When the resource is due for deletion; None: never (no TTL, or not finished)."""
    if ttl is None or phase not in TERMINAL_PHASES or completed is None:
        return None
    start = max(completed, created) if created is not None else completed
    return start + datetime.timedelta(seconds=ttl)


def expiry_message(ttl: int, expires: datetime.datetime) -> str:
    return (
        f"deleting the resource: it finished and spec.ttlSecondsAfterFinished ({ttl}s) passed at "
        f"{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}; its outputs and its Vertex job are kept"
    )
