"""Re-run a finished job without deleting it: a new value of the annotation batchinference.dev/rerun starts a
new attempt, so Git (or Argo CD's action) can ask for it. From the last output when rows failed or did not run
(Vertex runs only those and carries the rest), from spec.input otherwise (an input rejected, a job that never
ran, or one that fully succeeded and is wanted again).

Exactly once per value: the value is recorded in status in the same write that changes the phase, and a value
already recorded (the last twenty, by digest) never acts again, so a GitOps revert to an earlier value is not a
new request. The new attempt then goes through the usual submit protocol: a marker, then find-or-create by its
own attempt label, so no retry or restart of this turn can pay twice.
"""

from __future__ import annotations

import datetime
import hashlib

from ..api import TERMINAL_PHASES, Attempt, BatchInferenceJobSpec, BatchInferenceJobStatus, Rerun
from ..api.meta import RERUN_ANNOTATION
from ..api.status import MAX_RERUNS_SEEN
from .actions import Decision, Event, preflight_of
from .admission import Queue, admission
from .conditions import set_condition
from .identity import Resource
from .resume import hold
from .uris import is_gcs, predictions_file
from .vertex_jobs import FAILED, TERMINAL_JOB_CODES
from .wording import plural

_SHOWN = 256  # status keeps this much of a value; the digest covers all of it


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def is_new(value: str, status: BatchInferenceJobStatus) -> bool:
    """A value never acted on before (an empty value, or a removed annotation, asks for nothing)."""
    return bool(value) and (status.rerun is None or digest(value) not in status.rerun.seen)


def _record(status: BatchInferenceJobStatus, value: str, now: datetime.datetime, **fields: object) -> Rerun:
    seen = [*(status.rerun.seen if status.rerun else []), digest(value)][-MAX_RERUNS_SEEN:]
    return Rerun(value=value[:_SHOWN], time=now, seen=seen, **fields)  # type: ignore[arg-type]


def rerun_source(status: BatchInferenceJobStatus) -> str:
    """Output when the last attempt ran and left rows to finish; Input when its input was rejected (or its
    bucket was missing), when no job ran, or when every row succeeded (then the user wants a fresh run)."""
    last = status.attempts[-1] if status.attempts else None
    if last is None or not (last.job_name and last.start_time and last.output_location):
        return "Input"
    if last.state == FAILED and last.error and last.error.code in TERMINAL_JOB_CODES:
        return "Input"
    return "Input" if status.phase == "Succeeded" else "Output"


def take_rerun(
    spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus, value: str, now: datetime.datetime, generation: int
) -> Decision | None:
    """A new annotation value: on a finished resource, accept it (phase Pending, the next turns submit); on an
    unfinished one, record it as ignored (it must not re-run the job the moment it finishes). None: nothing new."""
    if not is_new(value, status):
        return None
    if status.phase not in TERMINAL_PHASES:
        # A resource created with the annotation already set: its first run is that value's run.
        quiet = not status.attempts
        status.rerun = _record(status, value, now, state="Ignored")
        message = (
            f"{RERUN_ANNOTATION}={value[:64]} ignored: the job has not finished (phase {status.phase}); give the "
            "annotation a new value once it has"
        )
        return Decision(status, events=[] if quiet else [Event("Warning", "RerunIgnored", message)])
    source = rerun_source(status)
    status.rerun = _record(status, value, now, state="Pending", source=source)
    status.phase = "Pending"
    status.completion_time = None
    status.row_errors = []
    status.rows, status.manifest = None, None  # the re-run's finish writes them anew
    if source == "Input":
        status.preflight = None  # the input may have been fixed: check it again
    what = "the unfinished requests of the last output" if source == "Output" else "spec.input"
    status.message = f"re-run requested ({RERUN_ANNOTATION}={value[:64]}): a new attempt runs {what}"
    for kind in ("Finished", "Failed", "Complete"):
        set_condition(status, kind, False, "Rerun", status.message, now, generation)
    set_condition(status, "Ready", False, "Rerun", status.message, now, generation)
    return Decision(status, events=[Event("Normal", "Rerun", status.message)])


def pending(status: BatchInferenceJobStatus) -> bool:
    return status.rerun is not None and status.rerun.state == "Pending"


def start_rerun(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    resource: Resource,
    now: datetime.datetime,
    generation: int,
    queue: Queue,
    created: str,
) -> Decision:
    """An accepted re-run: preflight (when it reads spec.input), a suspend or the queue may hold it; then its
    attempt is recorded with a `submitting` marker, and the submit protocol takes over."""
    rerun = status.rerun
    assert rerun is not None
    if rerun.source == "Input" and spec.preflight == "Enabled" and status.preflight is None:
        status.message = "re-run: checking the input against Vertex's import rules"
        set_condition(status, "Ready", False, "Preflight", status.message, now, generation)
        return Decision(status, actions=[preflight_of(spec, status)])
    if spec.suspend:
        return hold(status, now, generation)
    admitted, running, position = admission(resource, created, status.project or "", status.location or "", queue)
    if not admitted:
        status.phase = "Queued"
        status.message = f"re-run queued (position {position}): {plural(running, 'job')} running"
        set_condition(status, "Ready", False, "Queued", status.message, now, generation)
        return Decision(status)
    last = status.attempts[-1] if status.attempts else None
    output = last.output_location if last else None
    if rerun.source == "Output" and output:
        source = [predictions_file(output)] if is_gcs(output) else [output]
    else:
        source = spec.input.uris()
    number = (last.attempt if last else 0) + 1
    status.attempts.append(Attempt(attempt=number, submitting=now, input=source))
    status.attempt = number
    rerun.state, rerun.attempt = "Started", number
    status.phase = "Pending"
    status.start_time = now
    status.message = f"re-run: submitting attempt {number} from {source[0]}"
    set_condition(status, "Submitted", False, "Submitting", status.message, now, generation)
    set_condition(status, "Suspended", False, "NotSuspended", "", now, generation)
    set_condition(status, "Ready", False, "Pending", status.message, now, generation)
    return Decision(status, events=[Event("Normal", "Rerunning", status.message)])
