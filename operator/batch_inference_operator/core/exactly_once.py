"""When a create may be sent: never twice for one attempt while an earlier create may still land.

Vertex's create has no request id. A create whose outcome is unknown (a timeout, a reset, a 5xx) may
have made a job that a LIST does not show yet; creating again would pay twice. So a create is sent only
(a) right after this process wrote the attempt's `submitting` marker (nothing was sent for it yet), or
(b) once a settle window longer than the client timeout has passed since the marker, a LIST by uid and
attempt has found nothing, and a new marker has been written first (so a crash right after that create
is covered by the same rule). A crash between a marker and its create costs one settle window of delay,
never a second job. The settle window runs from the marker, so a create must follow its marker at
once: when a refused call (a failed LIST, a 429) delays it, the marker is `clean` (nothing that may land
was sent for it) but old, and a new marker is written before the create, without waiting. For the same
reason a deletion (deletionPolicy Cancel) does not let a resource go while a create of its latest
attempt may still land: it waits out that settle window, cancelling what lands (`release_wait`).
"""

from __future__ import annotations

import datetime
from typing import Literal

Gate = Literal["create", "wait", "remark"]


def create_gate(
    submitting: datetime.datetime | None,
    fresh: bool,
    now: datetime.datetime,
    settle: datetime.timedelta,
    clean: bool = False,
) -> Gate:
    """`fresh`: this process wrote this very marker and has sent no create for it. `clean`: it wrote it
    and only refused calls followed, so no create for it may land, but time has passed. Called only after
    a LIST by uid and attempt found no job."""
    if fresh:
        return "create"
    if clean or submitting is None or now >= submitting + settle:
        return "remark"
    return "wait"


def ambiguous(code: int | None, retryable: bool, connected: bool) -> bool:
    """Whether a failed create may still have made a job: the request may have reached Vertex and no
    answer said it was refused (a timeout, a reset, a 5xx). A 4xx is a refusal; no connection sends nothing."""
    return retryable and connected and (code is None or code >= 500)


def release_wait(
    submitting: datetime.datetime | None, fresh: bool, now: datetime.datetime, settle: datetime.timedelta
) -> datetime.datetime | None:
    """Until when a deleted resource must keep its finalizer because a create of its latest attempt (marker
    `submitting`, no job known) may still make a job; None when none can: no marker, a marker this
    process wrote and sent nothing for (`fresh`), or its settle window has passed."""
    if submitting is None or fresh or now >= submitting + settle:
        return None
    return submitting + settle
