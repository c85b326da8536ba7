"""BatchInferenceJobStatus and its parts: everything the operator decides lives here, never in spec."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .base import ApiModel

Phase = Literal[
    "Pending",
    "Queued",
    "Suspended",
    "Running",
    "Paused",
    "Cancelling",
    "Unknown",
    "Resuming",
    "Succeeded",
    "PartiallySucceeded",
    "Failed",
    "Cancelled",
]
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"})


class CompletionStats(ApiModel):
    successful: int = 0
    failed: int = 0
    incomplete: int = 0


class JobError(ApiModel):
    code: int
    message: str


class JobRef(ApiModel):
    """The Vertex job the resource currently follows."""

    name: str | None = None
    state: str | None = None
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    console_url: str | None = None


class RowCounts(ApiModel):
    """Rows of an attempt's output by outcome, read from the output itself."""

    succeeded: int = 0
    failed_transient: int = 0
    failed_permanent: int = 0
    incomplete: int = 0
    unreadable: int = Field(default=0, description="Rows that are not JSON or not shaped as Vertex writes them.")


MAX_ROW_ERRORS = 5


class RowError(ApiModel):
    """A sample failed row: where it is, and what Vertex said about it."""

    line: int | None = Field(default=None, description="Line in the output file (Cloud Storage outputs).")
    code: int | None = Field(default=None, description="The row's HTTP error code, when Vertex gave one.")
    message: str = Field(max_length=512)


class Attempt(ApiModel):
    """One Vertex job: marked `submitting` before the create call; its rows are added once its output is read."""

    attempt: int = Field(ge=1)
    job_name: str | None = None
    state: str | None = None
    submitting: datetime | None = Field(
        default=None, description="Set before the create call, cleared once the job is known."
    )
    uncertain_creates: int | None = Field(
        default=None,
        description="Creates whose outcome was unknown (timeout, 5xx): no second create until a settle window "
        "has passed and a lookup by this attempt's labels found nothing.",
    )
    input: list[str] = Field(default_factory=list)
    output_location: str | None = None
    completion_stats: CompletionStats | None = None
    rows: RowCounts | None = None
    row_errors: list[RowError] = Field(default_factory=list, max_length=MAX_ROW_ERRORS)
    error: JobError | None = None
    cancel_requested: bool | None = Field(default=None, description="The operator cancelled it (suspend).")
    resubmit: bool | None = Field(
        default=None, description="Cancelled because it never started (spec.stall.action Resubmit)."
    )
    progress_time: datetime | None = Field(
        default=None, description="When the job last made progress (entered RUNNING, or its counts moved)."
    )
    start_time: datetime | None = None
    end_time: datetime | None = None
    missing: int | None = Field(
        default=None, description="Input rows in no row of this attempt's output (found by key once it ended)."
    )
    missing_input: str | None = Field(
        default=None, description="The file of those input rows, fed to the next attempt beside this output."
    )


class RowTotals(ApiModel):
    """Every input row by its final outcome, from the results manifest (each row once, carried rows too)."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    missing: int = Field(default=0, description="In the input, in no output row.")


class PreflightReport(ApiModel):
    """What the input check saw: request count, and how many requests share a long prompt prefix."""

    requests: int = 0
    shared_prefix_requests: int | None = Field(
        default=None, description="Requests sharing a long prompt prefix; not counted for a BigQuery input."
    )
    files: int = 0
    bytes: int = 0


class Estimate(ApiModel):
    """What preflight expects the job to cost, before anything is paid."""

    input_tokens: int = 0
    cost_usd: str | None = Field(
        default=None, alias="costUSD", description="Batch price of the estimate; none when the model has no price."
    )
    method: str = Field(default="", max_length=512, description="How the tokens were estimated.")


class Usage(ApiModel):
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    candidates_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0
    unreadable_rows: int = Field(default=0, description="Output rows that could not be read (not counted above).")
    cache_hit_ratio: float = 0.0
    estimated_cost_usd: str | None = Field(default=None, alias="estimatedCostUSD")


class Condition(ApiModel):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


MAX_RERUNS_SEEN = 20


class Rerun(ApiModel):
    """The re-run annotation (batchinference.dev/rerun) as the operator acted on it: each value once."""

    value: str = Field(max_length=256, description="The annotation's value last acted on.")
    time: datetime
    state: Literal["Pending", "Started", "Ignored"] = Field(
        description="Pending: accepted, not submitted yet (preflight, queue). Started: its first attempt exists. "
        "Ignored: the job had not finished when the value appeared."
    )
    source: Literal["Output", "Input"] | None = Field(
        default=None, description="Output: the last attempt's output (its unfinished rows run). Input: spec.input."
    )
    attempt: int | None = Field(default=None, description="The re-run's first attempt.")
    seen: list[str] = Field(
        default_factory=list,
        max_length=MAX_RERUNS_SEEN,
        description="Digests of the values acted on, newest last: a value that comes back (a GitOps revert) "
        "does not re-run the job again.",
    )


class Shard(ApiModel):
    """One shard of a sharded resource: its planned input, and the child resource that runs it."""

    index: int = Field(ge=1, description="1-based; the child is <name>-shard-<index as 5 digits>.")
    input: list[str] = Field(default_factory=list, description="The shard's input files, or its BigQuery table.")
    rows: int | None = Field(default=None, description="Requests in the shard's input.")
    bytes: int | None = None
    resource: str | None = Field(default=None, description="The child BatchInferenceJob running this shard.")
    job: str | None = Field(default=None, description="The Vertex job the child currently follows.")
    state: str | None = Field(default=None, description="The child's phase.")
    attempts: int | None = Field(default=None, description="Vertex jobs of this shard so far.")
    completion_stats: CompletionStats | None = None


class BatchInferenceJobStatus(ApiModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    project: str | None = None
    location: str | None = None
    job: JobRef | None = None
    attempt: int | None = Field(default=None, description="Number of the latest attempt (for the printer column).")
    attempts: list[Attempt] = Field(default_factory=list)
    completion_stats: CompletionStats | None = None
    output_location: str | None = None
    usage: Usage | None = None
    row_errors: list[RowError] = Field(
        default_factory=list, max_length=MAX_ROW_ERRORS, description="Sample failed rows of the latest attempt."
    )
    preflight: PreflightReport | None = None
    rows: RowTotals | None = Field(default=None, description="Input rows by outcome, once the resource finished.")
    manifest: str | None = Field(
        default=None, description="The results manifest: each input row's key, outcome and where its answer is."
    )
    estimate: Estimate | None = None
    shards: list[Shard] = Field(
        default_factory=list,
        description="A sharded resource's shards, each run by a child BatchInferenceJob; phase, counts and "
        "usage above are their sums.",
    )
    shards_done: str | None = Field(default=None, description='Shards finished of all, as "2/3".')
    rerun: Rerun | None = None
    conditions: list[Condition] = Field(default_factory=list)
    message: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
