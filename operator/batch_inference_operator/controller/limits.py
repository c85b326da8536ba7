"""Vertex create pacing per (project, location): a steady rate and a bound on creates in flight.

Vertex has per-project quotas on job creation; a burst of a thousand resources sent at once meets 429s
and a retry storm. A resource that finds no create slot waits in phase Queued (controller/lifecycle.py)
and tries again when the limiter says a slot frees. A slot is taken before the submitting marker is
written, so a waiting resource never holds a marker that ages while it waits (core/exactly_once.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[str, str]


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0


@dataclass
class CreateLimiter:
    """A token bucket (`rate` per second, bursts of up to `burst`, at least 1) and at most `concurrency`
    creates in flight, per key. A rate or concurrency of 0 turns it off. Times are the event loop's clock."""

    rate: float
    concurrency: int
    burst: float = 1.0
    buckets: dict[Key, _Bucket] = field(default_factory=dict)

    def acquire(self, key: Key, now: float) -> float:
        """0 when a create may go now (the slot is taken: `release` it after the create); else the
        seconds until one may."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(self._burst, now)
        if self.concurrency and bucket.in_flight >= self.concurrency:
            return max(0.05, 1.0 / self.rate if self.rate else 0.05)
        if self.rate:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens < 1:
                return (1 - bucket.tokens) / self.rate
            bucket.tokens -= 1
        bucket.in_flight += 1
        return 0.0

    def release(self, key: Key) -> None:
        bucket = self.buckets.get(key)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1

    @property
    def _burst(self) -> float:
        return max(1.0, self.burst)
