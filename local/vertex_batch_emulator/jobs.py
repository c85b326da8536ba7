"""A batch prediction job as Vertex holds it: its fields, its states, and its REST JSON.

The job is the one record every layer shares: the engine moves it through its states, processing
fills in its counts, the REST surface renders it (`to_rest`, proto3 JSON as Vertex answers) and the
control API describes it (`describe`, everything, including what Vertex does not show). Keeping it
apart from both the lifecycle and the row processing lets either use it without importing the other.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .faults import JobFault

TERMINAL = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def project_number(project: str) -> str:
    """Vertex names carry the project number; derive a stable 12-digit one from the project id."""
    if project.isdigit():
        return project
    return str(100_000_000_000 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % 900_000_000_000)


class Gate:
    """Where a job's worker thread waits between rows while the job is held (paused, stalled).

    The worker waits on a condition, not in a sleep loop; every release wakes it. A cancel opens
    the gate for good, whatever holds it, so a held worker stops at once: reset and shutdown cancel
    every job, and so never wait for a held one.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._holds: set[str] = set()
        self._cancelled = False
        self._waiting = False

    @property
    def waiting(self) -> bool:
        """The worker is waiting here now: no row of the job is running."""
        return self._waiting

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._condition:
            self._cancelled = True
            self._condition.notify_all()

    def hold(self, reason: str) -> None:
        with self._condition:
            self._holds.add(reason)

    def release(self, reason: str) -> None:
        with self._condition:
            self._holds.discard(reason)
            self._condition.notify_all()

    def holds(self, reason: str) -> bool:
        with self._condition:
            return reason in self._holds

    def wait_open(self) -> bool:
        """Block while the gate is held and not cancelled; True when it blocked."""
        with self._condition:
            if self._cancelled or not self._holds:
                return False
            self._waiting = True
            try:
                self._condition.wait_for(lambda: self._cancelled or not self._holds)
            finally:
                self._waiting = False
            return True


@dataclass
class Counts:
    successful: int = 0
    failed: int = 0
    incomplete: int = 0
    processed: int = 0  # rows run (billed when they succeed)
    carried: int = 0  # rows passed through from a previous output


@dataclass
class Job:
    id: str
    project: str
    location: str
    display_name: str
    model: str
    model_id: str
    input_config: dict[str, Any]
    output_config: dict[str, Any]
    labels: dict[str, str]
    create_time: datetime.datetime
    fault: JobFault | None = None
    model_version_id: str = ""
    state: str = "JOB_STATE_PENDING"
    update_time: datetime.datetime | None = None
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    error: dict[str, Any] | None = None
    output_info: dict[str, str] | None = None
    counts: Counts | None = None
    timeline: list[dict[str, str]] = field(default_factory=list)
    gate: Gate = field(default_factory=Gate, repr=False, compare=False)
    queued_at: float = field(default_factory=time.monotonic)  # when it began to wait, for the queue limit
    cancelling_since: float | None = None  # when it entered CANCELLING

    @property
    def name(self) -> str:
        return f"projects/{project_number(self.project)}/locations/{self.location}/batchPredictionJobs/{self.id}"

    @property
    def input_uris(self) -> list[str]:
        if "bigquerySource" in self.input_config:
            return [self.input_config["bigquerySource"].get("inputUri", "")]
        return list(self.input_config.get("gcsSource", {}).get("uris", []))

    @property
    def output_prefix(self) -> str:
        if "bigqueryDestination" in self.output_config:
            return self.output_config["bigqueryDestination"].get("outputUri", "")
        return self.output_config.get("gcsDestination", {}).get("outputUriPrefix", "")

    @property
    def reads_bigquery(self) -> bool:
        return "bigquerySource" in self.input_config

    @property
    def writes_bigquery(self) -> bool:
        return "bigqueryDestination" in self.output_config

    @property
    def output_location(self) -> str | None:
        """Where the rows went: the Cloud Storage directory, or the BigQuery table's URI."""
        info = self.output_info or {}
        if "bigqueryOutputTable" in info:
            return f"{info['bigqueryOutputDataset']}.{info['bigqueryOutputTable']}"
        return info.get("gcsOutputDirectory")

    def move(self, state: str) -> None:
        now = utcnow()
        self.state = state
        self.update_time = now
        if state == "JOB_STATE_RUNNING" and self.start_time is None:
            self.start_time = now
        if state in TERMINAL:
            self.end_time = now
        self.timeline.append({"state": state, "time": rfc3339(now)})

    def to_rest(self) -> dict[str, Any]:
        """proto3 JSON: unset fields omitted, int64 as strings, RFC 3339 times."""
        body: dict[str, Any] = {
            "name": self.name,
            "displayName": self.display_name,
            "model": self.model,
            "inputConfig": self.input_config,
            "outputConfig": self.output_config,
            "state": self.state,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time or self.create_time),
        }
        if self.model_version_id:
            body["modelVersionId"] = self.model_version_id
        if self.labels:
            body["labels"] = self.labels
        if self.start_time:
            body["startTime"] = rfc3339(self.start_time)
        if self.end_time:
            body["endTime"] = rfc3339(self.end_time)
        if self.error:
            body["error"] = self.error
        if self.output_info:
            body["outputInfo"] = self.output_info
        if self.counts is not None:
            stats = {
                "successfulCount": self.counts.successful,
                "failedCount": self.counts.failed,
                "incompleteCount": self.counts.incomplete,
            }
            body["completionStats"] = {k: str(v) for k, v in stats.items() if v}
        return body

    def describe(self) -> dict[str, Any]:
        """The control API's view: everything, including what Vertex does not show."""
        counts = self.counts or Counts()
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "location": self.location,
            "displayName": self.display_name,
            "model": self.model,
            "state": self.state,
            "labels": self.labels,
            "input": self.input_uris,
            "outputUriPrefix": self.output_prefix,
            "outputDirectory": (self.output_info or {}).get("gcsOutputDirectory"),
            "outputLocation": self.output_location,
            "createTime": rfc3339(self.create_time),
            "startTime": rfc3339(self.start_time) if self.start_time else None,
            "endTime": rfc3339(self.end_time) if self.end_time else None,
            "completionStats": {
                "successful": counts.successful,
                "failed": counts.failed,
                "incomplete": counts.incomplete,
            },
            "rows": {"processed": counts.processed, "carried": counts.carried},
            "error": self.error,
            "stalled": self.gate.holds("stalled"),
            "heldBetweenRows": self.gate.waiting,
            "fault": self.fault.outcome if self.fault else None,
            "timeline": self.timeline,
        }
