"""When a create may be sent: never twice for one attempt while an earlier create may still land.

Vertex's create has no request id. A create whose outcome is unknown (a timeout, a reset, a 5xx) may
have made a job that a LIST does not show yet; creating again would pay twice. So a create is sent only
(a) right after this process wrote the attempt's `submitting` marker (nothing was sent for it yet), and
while a create sent now would land within the marker's settle window (by marker + settle - client
timeout): every later decision waits out that window, counted from the marker, not from the create; or
(b) once a settle window longer than the client timeout has passed since the marker, a LIST by uid and
attempt has found nothing, and a new marker has been written first (so a crash right after that create
is covered by the same rule). A crash between a marker and its create costs one settle window of delay,
never a second job; a fresh marker too old to create on (a slow turn, a long backoff) is replaced first.
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
    lands_within: datetime.timedelta,
) -> Gate:
    """`fresh`: this process wrote this very marker and has sent no create for it. `lands_within`: the
    longest a create may take to land (the client timeout). Called only after a LIST by uid and attempt
    found no job."""
    if fresh and submitting is not None and now + lands_within < submitting + settle:
        return "create"
    if fresh or submitting is None or now >= submitting + settle:
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
