"""Fault plans, set through `POST /emulator/v1/faults`:

```json
{
  "rows": [{"code": 429, "rate": 0.2, "seed": 7},              // transient, drawn anew in every job
           {"code": 400, "match": "forbidden topic"},           // permanent, on requests containing the text
           {"code": 500, "match": "flaky", "times": 1},         // fails the first time that request is seen
           {"drop": true, "match": "lost", "times": 1}],        // left out of the output, counted as succeeded
  "jobs": [{"outcome": "FAILED", "afterFraction": 0.6, "code": 13},
           {"outcome": "EXPIRED"},                              // never runs
           {"outcome": "CANCELLED", "afterFraction": 0.3},
           {"outcome": "PARTIALLY_SUCCEEDED", "afterFraction": 0.5,
            "match": {"displayName": "nightly-*", "labels": {"team": "search"}}, "count": 2}],
  "api":  [{"method": "create", "code": 429, "count": 3},
           {"method": "list", "hangSeconds": 5, "count": 1},
           {"method": "get", "code": 503, "rate": 0.4, "seed": 7, "count": 5}]  // 40 % of calls, 5 at most
}
```
A `drop` row fault writes no output row for the request at all while the job counts it as succeeded:
the lost row a results ledger has to find by key.

Job faults apply to the next `count` (default 1) created jobs that match; API faults to the next
`count` calls of the method (`create`, `get`, `list`, `cancel`, `delete`). With a `rate` below 1,
each call of the method draws (from `seed` and the call's number, so a run repeats) and only that
share of the calls fails, until `count` have; a call it spares goes on to the next fault of the
method, if any. A hang holds the call after its request has been read and then carries it out (and
answers `code`, if given), whether or not the client is still waiting: a create whose client timed
out still makes its job.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

JOB_OUTCOMES = {"FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED"}
API_METHODS = {"create", "get", "list", "cancel", "delete"}
ROW_CODES = {400, 429, 500, 503}


class FaultPlanError(ValueError):
    pass


@dataclass
class RowFault:
    code: int | None  # None: a drop
    rate: float = 1.0
    seed: int = 0
    match: str | None = None
    times: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    drop: bool = False

    def fails(self, job_id: str, request_key: str, request_text: str) -> bool:
        if self.match is not None and self.match not in request_text:
            return False
        if self.times is not None:
            count = self.seen.get(request_key, 0)
            if count >= self.times:
                return False
            self.seen[request_key] = count + 1
            return True
        if self.rate >= 1.0:
            return True
        draw = hashlib.sha256(f"{self.seed}/{job_id}/{request_key}".encode()).digest()
        return int.from_bytes(draw[:8], "big") / 2**64 < self.rate


@dataclass
class JobFault:
    outcome: str
    after_fraction: float = 0.0
    code: int | None = None
    message: str | None = None
    count: int = 1
    match: dict[str, Any] = field(default_factory=dict)

    def matches(self, display_name: str, labels: dict[str, str]) -> bool:
        pattern = self.match.get("displayName")
        if pattern and not fnmatch.fnmatchcase(display_name, pattern):
            return False
        return all(labels.get(k) == v for k, v in (self.match.get("labels") or {}).items())


@dataclass
class ApiFault:
    method: str
    code: int | None = None
    hang_seconds: float = 0.0
    count: int = 1
    message: str | None = None
    rate: float = 1.0
    seed: int = 0
    calls: int = 0  # calls of the method this fault has drawn for

    def fires(self) -> bool:
        """Whether this call of the method fails: always at rate 1, else a seeded draw per call."""
        if self.rate >= 1.0:
            return True
        self.calls += 1
        draw = hashlib.sha256(f"{self.seed}/{self.method}/{self.calls}".encode()).digest()
        return int.from_bytes(draw[:8], "big") / 2**64 < self.rate


@dataclass
class FaultPlan:
    rows: list[RowFault] = field(default_factory=list)
    jobs: list[JobFault] = field(default_factory=list)
    api: list[ApiFault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, plan: dict[str, Any]) -> None:
        try:
            rows = [_row(item) for item in plan.get("rows", [])]
            jobs = [_job(item) for item in plan.get("jobs", [])]
            api = [_api(item) for item in plan.get("api", [])]
        except (KeyError, TypeError, ValueError) as error:
            raise FaultPlanError(f"invalid fault plan: {error}") from None
        unknown = set(plan) - {"rows", "jobs", "api"}
        if unknown:
            raise FaultPlanError(f"invalid fault plan: unknown keys {sorted(unknown)}")
        with self.lock:
            self.rows += rows
            self.jobs += jobs
            self.api += api

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()
            self.jobs.clear()
            self.api.clear()

    def take_job_fault(self, display_name: str, labels: dict[str, str]) -> JobFault | None:
        with self.lock:
            for fault in self.jobs:
                if fault.matches(display_name, labels):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.jobs.remove(fault)
                    return fault
        return None

    def take_api_fault(self, method: str) -> ApiFault | None:
        with self.lock:
            for fault in self.api:
                if fault.method == method and fault.fires():
                    fault.count -= 1
                    if fault.count <= 0:
                        self.api.remove(fault)
                    return fault
        return None

    def row_failure(self, job_id: str, request_key: str, request_text: str) -> int | None:
        with self.lock:
            for fault in self.rows:
                if not fault.drop and fault.fails(job_id, request_key, request_text):
                    return fault.code
        return None

    def row_dropped(self, job_id: str, request_key: str, request_text: str) -> bool:
        """Whether this request's output row is lost (a `drop` fault)."""
        with self.lock:
            return any(f.drop and f.fails(job_id, request_key, request_text) for f in self.rows)

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "rows": [
                    {"code": f.code, "rate": f.rate, "seed": f.seed, "match": f.match, "times": f.times}
                    | ({"drop": True} if f.drop else {})
                    for f in self.rows
                ],
                "jobs": [
                    {
                        "outcome": f.outcome,
                        "afterFraction": f.after_fraction,
                        "code": f.code,
                        "count": f.count,
                        "match": f.match,
                    }
                    for f in self.jobs
                ],
                "api": [
                    {
                        "method": f.method,
                        "code": f.code,
                        "hangSeconds": f.hang_seconds,
                        "count": f.count,
                        "rate": f.rate,
                        "seed": f.seed,
                    }
                    for f in self.api
                ],
            }


def _row(item: dict[str, Any]) -> RowFault:
    drop = item.get("drop", False)
    if not isinstance(drop, bool):
        raise ValueError("drop must be true or false")
    if drop and "code" in item:
        raise ValueError("a row fault either drops the row or fails it with a code, not both")
    code = None if drop else int(item["code"])
    if code is not None and code not in ROW_CODES:
        raise ValueError(f"row fault code must be one of {sorted(ROW_CODES)}")
    rate = float(item.get("rate", 1.0))
    if not 0 <= rate <= 1:
        raise ValueError("rate must be between 0 and 1")
    times = item.get("times")
    return RowFault(
        code, rate, int(item.get("seed", 0)), item.get("match"), None if times is None else int(times), drop=drop
    )


def _job(item: dict[str, Any]) -> JobFault:
    outcome = item["outcome"]
    if outcome not in JOB_OUTCOMES:
        raise ValueError(f"job outcome must be one of {sorted(JOB_OUTCOMES)}")
    fraction = float(item.get("afterFraction", 0.0))
    if not 0 <= fraction <= 1:
        raise ValueError("afterFraction must be between 0 and 1")
    return JobFault(
        outcome,
        fraction,
        item.get("code"),
        item.get("message"),
        int(item.get("count", 1)),
        dict(item.get("match") or {}),
    )


def _api(item: dict[str, Any]) -> ApiFault:
    method = item["method"]
    if method not in API_METHODS:
        raise ValueError(f"api fault method must be one of {sorted(API_METHODS)}")
    code = item.get("code")
    hang = float(item.get("hangSeconds", 0))
    if code is None and not hang:
        raise ValueError("an api fault needs a code or hangSeconds")
    rate = float(item.get("rate", 1.0))
    if not 0 < rate <= 1:
        raise ValueError("rate must be above 0 and at most 1")
    return ApiFault(
        method,
        None if code is None else int(code),
        hang,
        int(item.get("count", 1)),
        item.get("message"),
        rate,
        int(item.get("seed", 0)),
    )
