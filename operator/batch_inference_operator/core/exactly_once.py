"""When a create may be sent: never twice for one attempt while an earlier create may still land.

Vertex's create has no request id. A create whose outcome is unknown (a timeout, a reset, a 5xx) may
have made a job that a LIST does not show yet; creating again would pay twice. So a create is sent only
(a) right after this process wrote the attempt's `submitting` marker (nothing was sent for it yet, and the
marker is younger than the client timeout, so the settle window counted from the marker also covers
the create itself), or
(b) once a settle window longer than the client timeout has passed since the marker, a LIST by uid and
attempt has found nothing, and a new marker has been written first (so a crash right after that create
is covered by the same rule). A crash between a marker and its create costs one settle window of delay,
never a second job.
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
    fresh_for: datetime.timedelta,
) -> Gate:
    """`fresh`: this process wrote this very marker and has sent no create for it. Called only after a
    LIST by uid and attempt found no job. A marker older than `fresh_for` (the client timeout) is not
    fresh any more: a create sent late after it (after failed lookups, a day-long suspend) would leave
    too little of the settle window after it, so a new marker is written first."""
    if fresh and submitting is not None and now < submitting + fresh_for:
        return "create"
    if submitting is None or now >= submitting + settle:
        return "remark"
    return "wait"


def ambiguous(code: int | None, retryable: bool, connected: bool) -> bool:
    """Whether a failed create may still have made a job: the request may have reached Vertex and no
    answer said it was refused (a timeout, a reset, a 5xx). A 4xx is a refusal; no connection sends nothing."""
    return retryable and connected and (code is None or code >= 500)
