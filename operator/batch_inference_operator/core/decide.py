"""The pure reconciler: spec + status + the observed Vertex job in, actions + new status out.

No I/O happens here (import contracts keep kopf and the Google clients out), so nearly all behaviour
is unit-tested by calling `decide()` with values. The controller performs the actions it returns and
writes the status it returns, and only when that status differs from the stored one.

The submit protocol makes paid jobs idempotent although Vertex's create has no request id:
1. `decide` first records the attempt with a `submitting` marker; the controller writes it and waits
   for the API server's answer.
2. In the same turn it decides again from the written status, which now asks for `SubmitJob`. The
   controller lists jobs labelled with this resource's uid and attempt (unless this process has just
   stored the attempt's first marker: then no create was ever sent for it), adopts one if it exists,
   creates otherwise.
3. `record_submission` writes the job name and clears the marker.
A crash anywhere in between leads back to step 2 in a later turn, whose list finds the job created
before the crash.
"""

from __future__ import annotations

import datetime

from ..api import TERMINAL_PHASES, Attempt, BatchInferenceJobSpec, BatchInferenceJobStatus, JobRef
from .actions import Action, CancelJob, Decision, Event, SubmitJob, preflight_of
from .admission import Queue, admission
from .conditions import is_true, set_condition
from .identity import Resource, attempt_labels, operator_labels, recreated_labels, spec_hash
from .policy import Tenancy, location_problem, policy_violations
from .record import fail, phase_event
from .rerun import pending, start_rerun, take_rerun
from .resume import after_attempt, attempts_used, hold, output_for
from .vertex_jobs import CANCELLING, PAUSED, TERMINAL_STATES, JobRequest, ObservedJob, console_url, phase_of, summary
from .watchdog import progressed, stall_of
from .wording import plural


def decide(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    observed: ObservedJob | None,
    resource: Resource,
    tenancy: Tenancy,
    now: datetime.datetime,
    queue: Queue | None = None,
    created: str = "",
) -> Decision:
    """What to do next and what the status should say. Pure: same inputs, same answer.

    The path of a resource: preflight -> submitting marker -> submit -> follow the job -> read its output
    -> settle: resume (a new attempt fed the output), hold (suspended), or finish.
    """
    status = status.model_copy(deep=True)
    generation = resource.generation
    status.observed_generation = generation
    rerun = take_rerun(spec, status, resource.rerun, now, generation)
    if rerun is not None:
        return rerun
    if status.phase in TERMINAL_PHASES:
        return Decision(status)
    if status.shards:  # a sharded parent: its children submit the shards (core/shards.py), never the parent
        return _sharded(status, now, generation)

    project = status.project or spec.project or tenancy.project
    location = status.location or spec.location or tenancy.location
    if not project or not location:
        return fail(
            status,
            "InvalidSpec",
            "no Google Cloud project: set spec.project, annotate the Namespace with "
            "batchinference.dev/project, or configure the operator's default project",
            now,
            generation,
        )
    status.project, status.location = project, location

    if pending(status):
        return start_rerun(spec, status, resource, now, generation, queue or Queue(), created)
    if not status.attempts:
        problem = location_problem(location, tenancy)
        if problem:
            return fail(status, "InvalidSpec", problem, now, generation)
        violations = policy_violations(spec, tenancy, project)
        if violations:
            message = "refused by the namespace's data policy: " + "; ".join(violations)
            return fail(status, "PolicyViolation", message, now, generation)
        return _before_first_attempt(spec, status, resource, now, generation, queue or Queue(), created)

    current = status.attempts[-1]
    if current.job_name is None:
        if spec.suspend and current.attempt > 1:
            return hold(status, now, generation)
        return Decision(status, actions=[_submit_action(spec, status, resource, current)])

    if current.state in TERMINAL_STATES:
        return after_attempt(spec, status, current, now, generation)

    if spec.suspend and not current.cancel_requested:
        current.cancel_requested = True
        previous = status.phase
        status.phase = "Suspended"
        status.message = f"suspending: cancelling Vertex job {current.job_name}; unfinished requests resume later"
        set_condition(status, "Suspended", True, "Suspended", status.message, now, generation)
        set_condition(status, "Ready", False, "Suspended", status.message, now, generation)
        events: list[Event] = []
        phase_event(previous, status, events)
        return Decision(
            status, actions=[CancelJob(current.attempt, project, location, current.job_name)], events=events
        )

    if observed is None or observed.name != current.job_name:
        return Decision(status)
    decision = _follow(spec, status, current, observed, tenancy, now, generation)
    resend = current.cancel_requested and not observed.terminal and observed.state != CANCELLING
    if resend and not any(isinstance(action, CancelJob) for action in decision.actions):
        # A cancel that did not take (refused, lost, or not yet seen by the poller) is sent again.
        decision.actions.append(CancelJob(current.attempt, project, location, current.job_name))
    return decision


def _before_first_attempt(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    resource: Resource,
    now: datetime.datetime,
    generation: int,
    queue: Queue,
    created: str,
) -> Decision:
    previous = status.phase
    if spec.preflight == "Enabled" and status.preflight is None:
        # Before holding a suspended job too: its problems show now, not when it is resumed.
        status.phase = "Pending"
        status.message = "checking the input against Vertex's import rules"
        set_condition(status, "Ready", False, "Preflight", status.message, now, generation)
        return Decision(status, actions=[preflight_of(spec, status)])
    if spec.suspend:
        return _suspended(status, now, generation)
    status.start_time = status.start_time or now
    admitted, running, position = admission(resource, created, status.project or "", status.location or "", queue)
    if not admitted:
        status.phase = "Queued"
        status.message = (
            f"queued (position {position}): {running} of at most {plural(queue.limit, 'job')} "
            f"{'is' if running == 1 else 'are'} running in "
            f"{status.project}/{status.location}"
        )
        set_condition(status, "Ready", False, "Queued", status.message, now, generation)
        events = [Event("Normal", "Queued", status.message)] if previous != "Queued" else []
        return Decision(status, events=events)
    status.phase = "Pending"
    status.attempts = [Attempt(attempt=1, submitting=now, input=spec.input.uris())]
    status.attempt = 1
    status.message = "submitting the Vertex batch prediction job"
    set_condition(status, "Submitted", False, "Submitting", status.message, now, generation)
    set_condition(status, "Suspended", False, "NotSuspended", "", now, generation)
    set_condition(status, "Ready", False, "Pending", status.message, now, generation)
    return Decision(
        status, events=[Event("Normal", "Accepted", f"submitting to Vertex AI in {status.project}/{status.location}")]
    )


def _sharded(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> Decision:
    """The input was split: this resource submits nothing itself; a Vertex job per shard runs its part."""
    rows = sum(shard.rows for shard in status.shards)
    message = (
        f"the input ({plural(rows, 'request')}) was split into {plural(len(status.shards), 'shard')}, "
        "one Vertex job each"
    )
    planned = not is_true(status, "Sharded")
    status.phase = status.phase or "Pending"
    if planned:
        status.phase = "Pending"
        status.message = message
        set_condition(status, "Sharded", True, "ShardsPlanned", message, now, generation)
        set_condition(status, "Ready", False, "ShardsPlanned", message, now, generation)
    return Decision(status, events=[Event("Normal", "ShardsPlanned", message)] if planned else [])


def _suspended(status: BatchInferenceJobStatus, now: datetime.datetime, generation: int) -> Decision:
    message = "suspended before submission: set spec.suspend to false to submit"
    changed = status.phase != "Suspended"
    status.phase = "Suspended"
    status.message = message
    set_condition(status, "Suspended", True, "Suspended", message, now, generation)
    set_condition(status, "Ready", False, "Suspended", message, now, generation)
    return Decision(status, events=[Event("Normal", "Suspended", message)] if changed else [])


def _submit_action(
    spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus, resource: Resource, attempt: Attempt
) -> SubmitJob:
    assert status.project and status.location
    digest = spec_hash(spec, status.project, status.location)
    started_rerun = status.rerun is not None and status.rerun.state == "Started"
    input_uris = tuple(attempt.input or spec.input.uris())
    request = JobRequest(
        project=status.project,
        location=status.location,
        model=spec.model,
        display_name=(spec.display_name or f"{resource.namespace}-{resource.name}")[:128],
        input_uris=input_uris,
        output_uri=output_for(spec, input_uris),
        labels={**spec.labels, **operator_labels(resource, attempt.attempt, digest)},
    )
    return SubmitJob(
        attempt=attempt.attempt,
        request=request,
        identity_labels=attempt_labels(resource.uid, attempt.attempt),
        # A re-run's attempt is new work: it never adopts an earlier resource's finished job.
        adopt_labels=recreated_labels(resource, digest) if attempt.attempt == 1 and not started_rerun else None,
        marker=attempt.submitting,
    )


def _watch(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    job: ObservedJob,
    tenancy: Tenancy,
    now: datetime.datetime,
    generation: int,
    events: list[Event],
) -> list[Action]:
    """The stall watchdog: condition Stalled (with an Event when it starts) while the job waits or runs
    without progress too long; cleared when it moves. With action Resubmit, a job that never started is
    cancelled and its attempt submitted again."""
    stall = stall_of(job, current, spec.stall, tenancy.stall, now, counts_move=spec.output.bigquery is None)
    was = is_true(status, "Stalled")
    if stall is None:
        if was:
            set_condition(status, "Stalled", False, "Progressing", "the Vertex job is moving again", now, generation)
            events.append(Event("Normal", "Unstalled", f"Vertex job {job.name} is moving again"))
        return []
    set_condition(status, "Stalled", True, stall.reason, stall.message, now, generation)
    if not was:
        events.append(Event("Warning", "Stalled", stall.message))
    # Cancelling the last allowed attempt would end the resource: report it instead.
    last = attempts_used(status) >= spec.resume.max_attempts
    if spec.stall.action != "Resubmit" or not stall.never_started or current.cancel_requested or last:
        return []
    current.cancel_requested = True
    current.resubmit = True
    status.message = f"{stall.message}; resubmitting: cancelling Vertex job {job.name} first"
    events.append(Event("Normal", "Resubmitting", status.message))
    return [CancelJob(current.attempt, status.project or "", status.location or "", job.name)]


def _follow(
    spec: BatchInferenceJobSpec,
    status: BatchInferenceJobStatus,
    current: Attempt,
    job: ObservedJob,
    tenancy: Tenancy,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    """Mirror the observed job into status; a finished one is read, then settled."""
    events: list[Event] = []
    previous = status.phase
    if not is_true(status, "Submitted"):
        events.append(Event("Normal", "Submitted", f"Vertex batch prediction job {job.name}"))
    status.job = JobRef(
        name=job.name,
        state=job.state,
        create_time=job.create_time,
        start_time=job.start_time,
        end_time=job.end_time,
        console_url=console_url(job.name, status.project or ""),
    )
    if progressed(current, job):
        current.progress_time = now
    current.state = job.state
    if job.stats is not None:
        status.completion_stats = job.stats
        current.completion_stats = job.stats
    if job.output_location:
        status.output_location = job.output_location
        current.output_location = job.output_location
    current.start_time = job.start_time
    current.end_time = job.end_time
    current.error = job.error
    set_condition(status, "Submitted", True, "Submitted", f"Vertex job {job.name}", now, generation)
    if not job.terminal:
        suspending = current.cancel_requested and not current.resubmit
        status.phase = "Suspended" if suspending else phase_of(job.state)  # type: ignore[assignment]
        status.message = summary(job)
        set_condition(status, "Ready", False, status.phase or "", status.message, now, generation)
        actions = _watch(spec, status, current, job, tenancy, now, generation, events)
        if job.state == PAUSED or any(c.type == "Paused" for c in status.conditions):
            paused = job.state == PAUSED
            set_condition(
                status, "Paused", paused, "Paused" if paused else "NotPaused", status.message, now, generation
            )
        phase_event(previous, status, events)
        return Decision(status, actions=actions, events=events)
    status.message = summary(job)
    after = after_attempt(spec, status, current, now, generation)
    return Decision(after.status, after.actions, events + after.events)
