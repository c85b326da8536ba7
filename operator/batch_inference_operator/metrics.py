"""Prometheus metrics, served on BIJ_METRICS_PORT (0: not served)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from .api import Usage

TOKENS = Counter(
    "bij_tokens", "Tokens consumed by finished BatchInferenceJobs (billed rows only).", ["kind", "model", "namespace"]
)
ESTIMATED_COST = Counter(
    "bij_estimated_cost_usd", "Estimated batch cost of finished BatchInferenceJobs.", ["model", "namespace"]
)
JOBS = Gauge("bij_jobs", "BatchInferenceJobs known to this operator, by phase.", ["phase"])
VERTEX_CALLS = Counter(
    "bij_vertex_api_calls", "Vertex AI API calls, by method and HTTP code (0: no answer).", ["method", "code"]
)
SUBMISSIONS = Counter("bij_submissions", "Vertex jobs submitted, by how they were found: created or adopted.", ["how"])
DUPLICATES_CANCELLED = Counter(
    "bij_duplicate_jobs_cancelled", "Second Vertex jobs for one attempt (a create that landed late), cancelled."
)
STALLED = Counter("bij_stalled", "Vertex jobs found stalled (queued or without progress too long).", ["reason"])
RESUMES = Counter("bij_resumes", "Attempts started to resume unfinished requests.")
RECONCILE_ERRORS = Counter("bij_reconcile_errors", "Errors met while reconciling, by reason.", ["reason"])
POLL_ROUND = Histogram("bij_poll_round_seconds", "Duration of one Vertex polling round (all projects/locations).")

_TOKEN_KINDS = {
    "prompt": "prompt_tokens",
    "cached": "cached_tokens",
    "candidates": "candidates_tokens",
    "thoughts": "thoughts_tokens",
    "total": "total_tokens",
}


def serve(port: int) -> None:
    if port:
        start_http_server(port)


def record_usage(usage: Usage, model: str, namespace: str) -> None:
    for kind, field in _TOKEN_KINDS.items():
        TOKENS.labels(kind, model, namespace).inc(getattr(usage, field))
    if usage.estimated_cost_usd:
        ESTIMATED_COST.labels(model, namespace).inc(float(usage.estimated_cost_usd))


def move(previous: str | None, current: str | None) -> None:
    if previous == current:
        return
    if previous:
        JOBS.labels(previous).dec()
    if current:
        JOBS.labels(current).inc()
