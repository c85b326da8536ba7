"""Operator configuration, from environment variables (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must not be negative")
    return value


def _positive(name: str, default: float) -> float:
    value = _float(name, default)
    if value == 0:
        raise ValueError(f"{name}=0: must be above 0 (seconds)")
    return value


def _whole(name: str, default: int) -> int:
    value = _float(name, default)
    if value != int(value):
        raise ValueError(f"{name}={os.environ.get(name)!r} must be a whole number")
    return int(value)


# Regions where Generative AI on Vertex AI (and so Gemini batch prediction) is served, from Google's
# "Generative AI on Vertex AI locations" page, plus the global and multi-region (us, eu) endpoints the SDK
# knows. Models differ by region; BIJ_LOCATIONS replaces this list.
GEMINI_LOCATIONS = frozenset(
    {
        "global", "us", "eu",
        "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west4",
        "northamerica-northeast1", "southamerica-east1",
        "europe-west1", "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8",
        "europe-west9", "europe-north1", "europe-central2", "europe-southwest1",
        "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast3", "asia-south1", "asia-southeast1",
        "australia-southeast1", "me-west1",
    }
)  # fmt: skip


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (os.environ.get(name) or default).lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    """Every knob, with the environment variable that sets it."""

    default_project: str | None = None  # BIJ_DEFAULT_PROJECT
    default_location: str = "us-central1"  # BIJ_DEFAULT_LOCATION
    poll_interval: float = 30.0  # BIJ_POLL_INTERVAL: seconds between Vertex LIST rounds while jobs move
    poll_interval_queued: float | None = None  # BIJ_POLL_INTERVAL_QUEUED: ... all queued; default 2 x poll
    # BIJ_RECONCILE_INTERVAL: the longest a resource goes without a turn when nothing happens (a resync);
    # turns follow watch events and poll results at once, and backoffs and waits at their own times.
    reconcile_interval: float = 60.0
    # BIJ_EVENT_UPDATE_INTERVAL: a recurring Event's count is written at most this often (seconds)
    event_update_interval: float = 30.0
    create_rate: float = 10.0  # BIJ_CREATE_RATE: Vertex creates per second per project/location; 0 = no limit
    create_burst: int = 100  # BIJ_CREATE_BURST: creates sent at once before the rate applies
    create_concurrency: int = 20  # BIJ_CREATE_CONCURRENCY: creates in flight per project/location; 0 = no limit
    vertex_endpoint: str | None = None  # BIJ_VERTEX_ENDPOINT: a base URL instead of Google's (the emulator)
    vertex_token: str | None = None  # BIJ_VERTEX_TOKEN: static bearer token with BIJ_VERTEX_ENDPOINT
    vertex_api_version: str = "v1"  # BIJ_VERTEX_API_VERSION
    vertex_timeout: float = 60.0  # BIJ_VERTEX_TIMEOUT: seconds per Vertex call
    namespaces: tuple[str, ...] = field(default_factory=tuple)  # BIJ_NAMESPACES: comma-separated; empty = all
    finalizer_timeout: float = 600.0  # BIJ_FINALIZER_TIMEOUT: give up cancelling after this long
    retry_base: float = 5.0  # BIJ_RETRY_BASE: first backoff after a recoverable Vertex error
    retry_max: float = 300.0  # BIJ_RETRY_MAX: backoff ceiling
    max_concurrent_jobs: int = 0  # BIJ_MAX_CONCURRENT_JOBS: per project/location; 0 = no limit
    peering: str | None = None  # BIJ_PEERING: kopf peering name; standby replicas wait on it (else standalone)
    log_format: str = "text"  # BIJ_LOG_FORMAT: text or json (one JSON object per line, for log pipelines)
    metrics_port: int = 0  # BIJ_METRICS_PORT: Prometheus metrics; 0 serves none
    prices_json: str | None = None  # BIJ_PRICES: {"model": {"input": 0.3, "output": 2.5}} in $ per 1M tokens
    locations: frozenset[str] = GEMINI_LOCATIONS  # BIJ_LOCATIONS: comma-separated regions serving Gemini batch
    unreachable_tries: int = 5  # BIJ_UNREACHABLE_TRIES: connection failures to an endpoint before Failed
    permission_tries: int = 8  # BIJ_PERMISSION_TRIES: 403s on a submit or preflight before Failed (PermissionDenied)
    create_settle: float | None = None  # BIJ_CREATE_SETTLE: seconds; default 2 x BIJ_VERTEX_TIMEOUT + 30
    stall_queued_after: int = 12 * 3600  # BIJ_STALL_QUEUED_AFTER: seconds in Vertex's queue before Stalled
    stall_running_after: int = 6 * 3600  # BIJ_STALL_RUNNING_AFTER: seconds running without progress

    @property
    def queued_poll_interval(self) -> float:
        """Seconds between poll rounds while every followed job waits in Vertex's queue."""
        if self.poll_interval_queued is not None:
            return max(self.poll_interval, self.poll_interval_queued)
        return 2 * self.poll_interval

    @property
    def create_settle_window(self) -> float:
        """After a create whose outcome is unknown, how long before another create may be sent for that
        attempt: longer than the client timeout, so a create Vertex completes late shows up first."""
        if self.create_settle is not None:
            return self.create_settle
        return 2 * self.vertex_timeout + 30

    @classmethod
    def from_env(cls) -> Settings:
        namespaces = tuple(n.strip() for n in os.environ.get("BIJ_NAMESPACES", "").split(",") if n.strip())
        locations = frozenset(n.strip() for n in os.environ.get("BIJ_LOCATIONS", "").split(",") if n.strip())
        default_location = os.environ.get("BIJ_DEFAULT_LOCATION") or "us-central1"
        locations = locations or GEMINI_LOCATIONS
        if default_location not in locations:
            raise ValueError(f"BIJ_DEFAULT_LOCATION={default_location!r} is not in the supported locations")
        settings = cls(
            default_project=os.environ.get("BIJ_DEFAULT_PROJECT") or None,
            default_location=default_location,
            locations=locations,
            unreachable_tries=max(1, int(_float("BIJ_UNREACHABLE_TRIES", 5))),
            permission_tries=max(1, int(_float("BIJ_PERMISSION_TRIES", 8))),
            stall_queued_after=int(_float("BIJ_STALL_QUEUED_AFTER", 12 * 3600)),
            stall_running_after=int(_float("BIJ_STALL_RUNNING_AFTER", 6 * 3600)),
            create_settle=_float("BIJ_CREATE_SETTLE", -1) if os.environ.get("BIJ_CREATE_SETTLE") else None,
            poll_interval=_positive("BIJ_POLL_INTERVAL", 30.0),
            poll_interval_queued=_positive("BIJ_POLL_INTERVAL_QUEUED", 1)
            if os.environ.get("BIJ_POLL_INTERVAL_QUEUED")
            else None,
            reconcile_interval=_positive("BIJ_RECONCILE_INTERVAL", 60.0),
            event_update_interval=_float("BIJ_EVENT_UPDATE_INTERVAL", 30.0),
            create_rate=_float("BIJ_CREATE_RATE", 10.0),
            create_burst=max(1, _whole("BIJ_CREATE_BURST", 100)),
            create_concurrency=_whole("BIJ_CREATE_CONCURRENCY", 20),
            vertex_endpoint=os.environ.get("BIJ_VERTEX_ENDPOINT") or None,
            vertex_token=os.environ.get("BIJ_VERTEX_TOKEN") or None,
            vertex_api_version=os.environ.get("BIJ_VERTEX_API_VERSION") or "v1",
            vertex_timeout=_float("BIJ_VERTEX_TIMEOUT", 60.0),
            namespaces=namespaces,
            finalizer_timeout=_float("BIJ_FINALIZER_TIMEOUT", 600.0),
            retry_base=_float("BIJ_RETRY_BASE", 5.0),
            retry_max=_float("BIJ_RETRY_MAX", 300.0),
            prices_json=os.environ.get("BIJ_PRICES") or None,
            metrics_port=int(_float("BIJ_METRICS_PORT", 0)),
            peering=os.environ.get("BIJ_PEERING") or None,
            max_concurrent_jobs=int(_float("BIJ_MAX_CONCURRENT_JOBS", 0)),
            log_format=_choice("BIJ_LOG_FORMAT", ("text", "json"), "text"),
        )
        if settings.create_settle_window <= 2 * settings.vertex_timeout:
            # A create is sent only in the first half of its marker's window and must land inside the window
            # (core/exactly_once.py): the window must hold two client timeouts.
            raise ValueError(
                f"BIJ_CREATE_SETTLE={settings.create_settle_window:g} must exceed BIJ_VERTEX_TIMEOUT "
                f"({settings.vertex_timeout:g}) twice"
            )
        return settings
