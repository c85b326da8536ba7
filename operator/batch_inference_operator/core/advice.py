"""Advice from a finished job's figures: warnings a user can act on."""

from __future__ import annotations

from ..api import BatchInferenceJobStatus
from .actions import Event

# Implicit caching is "ineffective" when many requests share a long prefix but few tokens hit the cache.
CACHE_SHARED_SHARE = 0.2
CACHE_LOW_RATIO = 0.05


def cache_advice(status: BatchInferenceJobStatus) -> list[Event]:
    """Warn when many requests shared a long prefix but the job's cache hit ratio stayed low."""
    report, usage = status.preflight, status.usage
    if not report or not usage or not report.requests or not usage.prompt_tokens:
        return []
    if report.shared_prefix_requests is None:  # not counted (a BigQuery input)
        return []
    shared = report.shared_prefix_requests / report.requests
    if shared < CACHE_SHARED_SHARE or usage.cache_hit_ratio >= CACHE_LOW_RATIO:
        return []
    return [
        Event(
            "Warning",
            "ImplicitCachingIneffective",
            f"{report.shared_prefix_requests} of {report.requests} requests share a prompt prefix of at least "
            f"2,048 tokens, so implicit caching should have served part of their prompts, but the cache hit "
            f"ratio was {usage.cache_hit_ratio:.1%}. Put the shared part first in every request and keep "
            "the model and project the same.",
        )
    ]
