"""The emulator's settings, read and changed through `GET/PUT /emulator/v1/config` (camelCase keys).

| key | default | what it sets |
|---|---|---|
| `queueSeconds` | 1.0 | time a job spends PENDING before it runs |
| `minRunSeconds` | 1.0 | least time a job spends RUNNING |
| `rowsPerSecond` | 0 | processing pace; 0 runs rows as fast as the machine goes |
| `cacheThresholdTokens` | 2048 | shared prompt prefix needed for an implicit-cache hit |
| `cancellingSeconds` | 0.5 | time a cancelled job spends CANCELLING; with 0, one not yet running ends at once |
| `maxRunningJobsPerProject` | 0 | jobs of a project PENDING or later at once; others wait QUEUED (FIFO); 0: no limit |
| `queueLimitSeconds` | 259200 | time a job may wait QUEUED or PENDING before it ends EXPIRED (72 h, as on Vertex) |
| `recordExchanges` | 0 | how many of the latest API calls `GET /emulator/v1/exchanges` keeps; 0: none |
| `models` | the Gemini models (`catalogue`) | the models a create may name |
| `locations` | the regions serving Gemini batch (`catalogue`) | the locations a call may name; others are 400 |

Values are read when they are used, so a change applies to the jobs already there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import catalogue

DEFAULT_MODELS = frozenset(catalogue.MODELS)
QUEUE_LIMIT_SECONDS = 72 * 3600.0

KEYS = {
    "queueSeconds": "queue_seconds",
    "minRunSeconds": "min_run_seconds",
    "rowsPerSecond": "rows_per_second",
    "cacheThresholdTokens": "cache_threshold_tokens",
    "cancellingSeconds": "cancelling_seconds",
    "maxRunningJobsPerProject": "max_running_jobs_per_project",
    "queueLimitSeconds": "queue_limit_seconds",
    "recordExchanges": "record_exchanges",
}


@dataclass
class Config:
    queue_seconds: float = 1.0
    min_run_seconds: float = 1.0
    rows_per_second: float = 0.0  # 0: as fast as the machine goes
    cache_threshold_tokens: int = 2048
    cancelling_seconds: float = 0.5
    max_running_jobs_per_project: int = 0  # 0: no limit
    queue_limit_seconds: float = QUEUE_LIMIT_SECONDS
    record_exchanges: int = 0
    models: set[str] = field(default_factory=lambda: set(DEFAULT_MODELS))
    locations: set[str] = field(default_factory=lambda: set(catalogue.LOCATIONS))

    def update(self, values: dict[str, Any]) -> None:
        """Apply all of `values` or, when one is wrong, none of them."""
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("models", "locations"):
                if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                    raise ValueError(f"{key} must be a list of strings")
                changes[key] = set(value)
            elif key in KEYS:
                number = type(getattr(self, KEYS[key]))(value)
                if number < 0:
                    raise ValueError(f"{key} must not be negative")
                changes[KEYS[key]] = number
            else:
                raise ValueError(f"unknown config key {key!r}")
        for name, value in changes.items():
            setattr(self, name, value)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {key: getattr(self, name) for key, name in KEYS.items()}
        described["models"] = sorted(self.models)
        described["locations"] = sorted(self.locations)
        return described
