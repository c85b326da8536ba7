"""State the controller keeps between handler runs: clients, the poller's observations, backoff, and the
read-your-writes guard. One `Runtime` per operator process, kept in kopf's memo."""

from __future__ import annotations

import asyncio
import datetime
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..adapters.vertex import Vertex
from ..api import BatchInferenceJobStatus
from ..core.actions import Event
from ..core.pricing import DEFAULT_PRICES, Price, parse_prices
from ..core.vertex_jobs import ObservedJob
from ..settings import Settings
from .kube import Kube
from .limits import CreateLimiter
from .status_patch import merge_patch

# Seconds a turn waits for its own last status write to come back through the watch before deciding
# without it (a write that never echoes must not stall a resource for good).
WRITE_GRACE = 30.0
# Released resources remembered (see Runtime.released).
RELEASED_KEPT = 1024


class OnFirstUse:
    """An adapter made, and its library imported, when first used: handing a BigQuery adapter to a scan
    of a Cloud Storage output must not load google-cloud-bigquery (with pyarrow and numpy)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._made: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._made is None:
            self._made = self._make()
        return getattr(self._made, name)


def _cloud_storage() -> Any:
    from ..adapters.gcs import CloudStorage

    return CloudStorage()


def _bigquery() -> Any:
    from ..adapters.bigquery import BigQuery

    return BigQuery()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Tracked:
    """A resource whose Vertex job the poller follows."""

    project: str
    location: str
    job_name: str
    create_time: datetime.datetime | None
    # After a create whose outcome was unknown: the attempt's labels, so the poller can find and cancel a
    # second job that lands late (within two settle windows of the first job's creation).
    duplicate_watch: dict[str, str] | None = None


@dataclass(frozen=True)
class Marker:
    """A `submitting` marker this process stored and has sent no create for yet (core/exactly_once.py).
    `first`: the attempt had no marker before it, so no create was ever sent for the attempt."""

    at: datetime.datetime
    first: bool = False


@dataclass
class Backoff:
    failures: int = 0
    next_attempt: float = 0.0


@dataclass
class Runtime:
    settings: Settings
    vertex: Vertex
    # Cloud Storage and BigQuery clients, made on first use: an operator that never preflights or reads
    # an output of one of them does not import its library (tens of MB resident).
    _gcs: Any = None
    _bigquery: Any = None
    prices: dict[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    observations: dict[str, ObservedJob] = field(default_factory=dict)
    tracked: dict[str, Tracked] = field(default_factory=dict)  # by resource uid
    # Read-your-writes: after a status write, the status written, and when. A turn on a body whose
    # status is not that one yet (the watch has not delivered the write; another write, such as kopf's
    # finalizer, came first) would decide from an older status (a second marker, a second lookup), so it
    # waits for the write to come back, at most `write_grace` seconds.
    awaiting: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)  # by resource uid
    phases: dict[str, str | None] = field(default_factory=dict)  # by resource uid, for the jobs gauge
    faulted: set[str] = field(default_factory=set)  # resources whose last turn raised an unexpected error
    # Markers this process wrote and has sent no create for yet (core/exactly_once.py), by resource uid.
    fresh: dict[str, Marker] = field(default_factory=dict)
    # Markers this process wrote that only refused calls followed (no create for them may land), by uid.
    clean: dict[str, datetime.datetime] = field(default_factory=dict)
    # Events found outside a resource's turn (the poller's duplicate check), posted on its next turn.
    notices: dict[str, list[Event]] = field(default_factory=dict)
    # Deleted resources, so a turn still running at the deletion does not track them again; bounded (a
    # turn outlives its resource's release by seconds, not by thousands of deletions).
    released: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # One wake-up per resource's loop: a watch event or a poll that changed its job sets it.
    wakers: dict[str, asyncio.Event] = field(default_factory=dict)
    poller: asyncio.Task[None] | None = None
    kube: Kube = field(default_factory=Kube)  # status writes and Events (controller/kube.py)
    limiter: CreateLimiter = field(default_factory=lambda: CreateLimiter(0, 0))  # from_settings sets it
    clock: Callable[[], datetime.datetime] = now  # the time decisions are made at (tests pass their own)

    @property
    def gcs(self) -> Any:
        if self._gcs is None:
            self._gcs = OnFirstUse(_cloud_storage)
        return self._gcs

    @property
    def bigquery(self) -> Any:
        if self._bigquery is None:
            self._bigquery = OnFirstUse(_bigquery)
        return self._bigquery

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        runtime = cls(settings, Vertex(settings))
        runtime.limiter = CreateLimiter(settings.create_rate, settings.create_concurrency, settings.create_burst)
        runtime.kube = Kube(settings.event_update_interval)
        if settings.prices_json:
            runtime.prices.update(parse_prices(settings.prices_json))
        return runtime

    def delay_for(self, uid: str) -> float:
        entry = self.backoff.setdefault(uid, Backoff())
        entry.failures += 1
        delay = min(self.settings.retry_max, self.settings.retry_base * 2 ** (entry.failures - 1))
        delay *= 0.8 + 0.4 * random.random()  # jitter, so many resources do not retry in step
        entry.next_attempt = asyncio.get_running_loop().time() + delay
        return delay

    def fault(self, uid: str) -> float:
        """An unexpected error: nothing more is tried for this resource until its backoff has passed."""
        self.faulted.add(uid)
        return self.delay_for(uid)

    def recovered(self, uid: str) -> None:
        self.faulted.discard(uid)

    def until_retry(self, uid: str) -> float:
        """Seconds until this resource's backoff has passed (0 when it has)."""
        entry = self.backoff.get(uid)
        return 0.0 if entry is None else max(0.0, entry.next_attempt - asyncio.get_running_loop().time())

    def held(self, uid: str) -> bool:
        """True while a resource that met an unexpected error waits out its backoff."""
        return uid in self.faulted and not self.may_try(uid)

    def wake(self, uid: str) -> None:
        waker = self.wakers.get(uid)
        if waker is not None:
            waker.set()

    def forget(self, uid: str) -> None:
        self.released[uid] = None
        while len(self.released) > RELEASED_KEPT:
            self.released.popitem(last=False)
        self.wakers.pop(uid, None)
        self.faulted.discard(uid)
        self.fresh.pop(uid, None)
        self.clean.pop(uid, None)
        self.notices.pop(uid, None)
        self.tracked.pop(uid, None)
        self.backoff.pop(uid, None)
        self.awaiting.pop(uid, None)
        self.limiter.forget(uid)

    def expect(self, uid: str, written: BatchInferenceJobStatus) -> None:
        """Remember a status this process has just written."""
        self.awaiting[uid] = (written.to_wire(), asyncio.get_running_loop().time())

    def stale(self, uid: str, stored: dict[str, Any]) -> bool:
        """True while the stored status does not show this process's last write to it yet (for at most
        `write_grace` seconds: a write that never comes back is not waited for forever)."""
        pending = self.awaiting.get(uid)
        if pending is None:
            return False
        written, since = pending
        waited = asyncio.get_running_loop().time() - since
        return waited < self.write_grace and bool(
            merge_patch({k: v for k, v in stored.items() if k != "kopf"}, written)
        )

    @property
    def settle(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.settings.create_settle_window)

    @property
    def lands_within(self) -> datetime.timedelta:
        """How long after it is sent a create may still land: half the settle window (core/exactly_once.py).
        Creates are sent only in the first half of their marker's window, so a late one lands inside it."""
        return datetime.timedelta(seconds=self.settings.create_settle_window / 2)

    @property
    def write_grace(self) -> float:
        return WRITE_GRACE

    def may_try(self, uid: str) -> bool:
        entry = self.backoff.get(uid)
        return entry is None or asyncio.get_running_loop().time() >= entry.next_attempt
