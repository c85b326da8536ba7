"""Vertex create pacing per (project, location): a steady rate and a bound on creates in flight.

Vertex has per-project quotas on job creation; a burst of a thousand resources sent at once meets 429s
and a retry storm. A resource that finds no create slot waits in phase Queued (controller/lifecycle.py)
and tries again when the limiter says its slot comes. A slot is taken before the submitting marker is
written, so a waiting resource never holds a marker that ages while it waits (core/exactly_once.py).

Waiters are served first come, first served, and each is told when its own turn comes (its place in
the line over the rate), not "try again in 1/rate seconds": a thousand resources that all retried every
tenth of a second kept the operator's event loop busy deciding, which delayed the creates themselves
(benchmarks/bench.py, P2 at 1,000 jobs).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

Key = tuple[str, str]
# Seconds past the time it was told to come back after which a waiter that did not is dropped from the
# line (deleted, or no longer submitting), so those behind it are not held for it.
GONE_AFTER = 10.0
# Seconds between two sweeps for such waiters: a sweep reads the whole line, and with thousands waiting
# a sweep on every call was a quarter of the event loop's time (bench.py --kube real, 5,000 jobs).
SWEEP_EVERY = 1.0
# Seconds past its time after which a waiter no longer holds up those behind it.
LATE = 0.5
# The wait per place in line while every create slot is in flight (creates take tens of milliseconds),
# and its cap.
IN_FLIGHT_WAIT = 0.05
IN_FLIGHT_MAX = 1.0


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0
    swept: float = float("-inf")
    waiting: OrderedDict[str, float] = field(default_factory=OrderedDict)  # uid -> when it was told to return


@dataclass
class CreateLimiter:
    """A token bucket (`rate` per second, bursts of up to `burst`, at least 1) and at most `concurrency`
    creates in flight, per key. A rate or concurrency of 0 turns it off. Times are the event loop's clock."""

    rate: float
    concurrency: int
    burst: float = 1.0
    buckets: dict[Key, _Bucket] = field(default_factory=dict)

    def acquire(self, key: Key, now: float, uid: str = "") -> float:
        """0 when a create may go now (the slot is taken: `release` it after the create); else the
        seconds until this waiter's turn, by its place in the line."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(self._burst, now)
        if self.rate:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        ahead = self._ahead(bucket, uid, now)
        full = bool(self.concurrency) and bucket.in_flight + ahead >= self.concurrency
        short = bool(self.rate) and bucket.tokens < ahead + 1
        if full or short:
            if short:
                wait = max(IN_FLIGHT_WAIT, (ahead + 1 - bucket.tokens) / self.rate)
            else:
                wait = min(IN_FLIGHT_MAX, IN_FLIGHT_WAIT * (ahead + 1))
            bucket.waiting[uid] = now + wait
            return wait
        bucket.waiting.pop(uid, None)
        if self.rate:
            bucket.tokens -= 1
        bucket.in_flight += 1
        return 0.0

    async def slot(self, key: Key, uid: str, patience: float) -> float:
        """`acquire`, waiting in place (keeping the place in line) while the slot comes within `patience`
        seconds: a wait that short is not worth a Queued status write and back. Returns 0 with the slot
        taken, else the seconds until this waiter's turn."""
        clock = asyncio.get_running_loop().time
        started = clock()
        while True:
            now = clock()
            wait = self.acquire(key, now, uid)
            if wait == 0 or now + wait - started > patience:
                return wait
            await asyncio.sleep(wait)  # the limiter's own pace: the time this waiter's slot comes

    def release(self, key: Key) -> None:
        bucket = self.buckets.get(key)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1

    def forget(self, uid: str) -> None:
        """A deleted resource leaves every line it waits in."""
        for bucket in self.buckets.values():
            bucket.waiting.pop(uid, None)

    @staticmethod
    def _ahead(bucket: _Bucket, uid: str, now: float) -> int:
        """Waiters before `uid` in the line (all of them for a newcomer) that are on time: one that is late
        back (its turn delayed) keeps its place but holds no one up. Drops those long overdue (at most
        once a second; until then they are late, so they hold no one up either)."""
        if now - bucket.swept >= SWEEP_EVERY:
            bucket.swept = now
            for gone in [other for other, due in bucket.waiting.items() if due + GONE_AFTER < now and other != uid]:
                del bucket.waiting[gone]
        ahead = 0
        for other, due in bucket.waiting.items():
            if other == uid:
                return ahead
            ahead += due + LATE >= now
        return ahead

    @property
    def _burst(self) -> float:
        return max(1.0, self.burst)
