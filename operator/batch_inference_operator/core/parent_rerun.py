"""Re-running a sharded parent: the re-run annotation passed on to the shards that need it.

A new value of batchinference.dev/rerun on a finished parent is recorded once (core/rerun.py's rules: a
value acts once, a GitOps revert to an old value acts never) and copied onto its shards' resources: those
that did not succeed when the parent ended (source Output: each re-runs its own unfinished rows), or all
of them when every shard succeeded (source Input: a fresh run is wanted). Each child then re-runs itself
through the single-job machinery, so no shard is paid twice. The parent waits until every chosen child
has taken the value before it rolls up again; otherwise it would see them still finished and end at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..api import TERMINAL_PHASES, BatchInferenceJobStatus
from ..api.meta import RERUN_ANNOTATION
from .actions import Event
from .conditions import set_condition
from .rerun import _record, digest, is_new
from .wording import plural

if TYPE_CHECKING:
    from .shards import Child


def take_parent_rerun(
    status: BatchInferenceJobStatus, value: str, now: datetime.datetime, generation: int
) -> list[Event] | None:
    """A new annotation value: accepted on a finished parent (status reset, shards chosen by `source`),
    recorded as ignored on a live one. None: nothing new."""
    if not is_new(value, status):
        return None
    if status.phase not in TERMINAL_PHASES:
        status.rerun = _record(status, value, now, state="Ignored")
        message = (
            f"{RERUN_ANNOTATION}={value[:64]} ignored: the job has not finished (phase {status.phase}); give the "
            "annotation a new value once it has"
        )
        return [Event("Warning", "RerunIgnored", message)]
    every = all(shard.state == "Succeeded" for shard in status.shards)
    status.rerun = _record(status, value, now, state="Pending", source="Input" if every else "Output")
    chosen = [shard.index for shard in status.shards if every or shard.state != "Succeeded"]
    status.phase = "Pending"
    status.completion_time = None
    status.rows, status.manifest = None, None  # the re-run's end writes them anew
    status.message = (
        f"re-run requested ({RERUN_ANNOTATION}={value[:64]}): {plural(len(chosen), 'shard')} "
        f"{'re-run from their input' if every else 'resume their unfinished requests'}"
    )
    for kind in ("Finished", "Failed", "Complete"):
        set_condition(status, kind, False, "Rerun", status.message, now, generation)
    set_condition(status, "Ready", False, "Rerun", status.message, now, generation)
    return [Event("Normal", "Rerun", status.message)]


def chosen(status: BatchInferenceJobStatus, child: Child, sent: str) -> bool:
    """Whether this shard re-runs for the parent's pending re-run."""
    rerun = status.rerun
    return rerun is not None and (rerun.source == "Input" or child.status.phase != "Succeeded" or taken(sent, child))


def taken(value: str, child: Child) -> bool:
    """The child has acted on the value (accepted or ignored it)."""
    return child.status.rerun is not None and digest(value) in child.status.rerun.seen


def annotations(
    status: BatchInferenceJobStatus, children: Sequence[Child], value: str
) -> list[tuple[str, dict[str, object]]]:
    """Merge patches that pass the pending re-run's value (`value`, the annotation as it is, when it is
    still the one accepted; status keeps only its start) on to the chosen children not yet holding it.
    Once every chosen child has taken it, the re-run is Started and the parent rolls up again."""
    rerun = status.rerun
    if rerun is None or rerun.state != "Pending":
        return []
    sent = value if value and digest(value) == rerun.seen[-1] else rerun.value
    waiting = [child for child in children if chosen(status, child, sent) and not taken(sent, child)]
    if not waiting:
        rerun.state = "Started"
        return []
    patch = {"metadata": {"annotations": {RERUN_ANNOTATION: sent}}}
    return [(child.name, patch) for child in waiting]
