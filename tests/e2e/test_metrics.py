"""The operator's Prometheus endpoint, scraped while a job runs to completion."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from test_operator import phase_of

from conftest import bij_path, call, eventually, job_manifest, requests_rows, write_jsonl


async def scrape(stack: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{stack.operator_env['BIJ_METRICS_PORT']}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_as_a_job_runs(stack: Any, bucket: Any) -> None:
    before = await eventually(lambda: scrape(stack), timeout=10, message="metrics served")
    src = write_jsonl(bucket, "in.jsonl", requests_rows(8, prefix="Be brief. " * 900))
    await call(stack.kube, "POST", bij_path(), job_manifest("metered", src, f"gs://{bucket.name}/out/"))
    done = await phase_of(stack, "metered")
    usage = done["status"]["usage"]

    async def moved() -> dict | None:
        after = await scrape(stack)
        return (
            after
            if value(after, "bij_tokens_total", kind="prompt", model="gemini-2.5-flash", namespace="default")
            else None
        )

    after = await eventually(moved, timeout=10, message="token counters")
    labels = {"model": "gemini-2.5-flash", "namespace": "default"}
    assert value(after, "bij_tokens_total", kind="prompt", **labels) == usage["promptTokens"]
    assert value(after, "bij_tokens_total", kind="cached", **labels) == usage["cachedTokens"] > 0
    assert value(after, "bij_tokens_total", kind="total", **labels) == usage["totalTokens"]
    assert value(after, "bij_estimated_cost_usd_total", **labels) == float(usage["estimatedCostUSD"])
    assert (
        value(after, "bij_vertex_api_calls_total", method="create", code="200")
        == value(before, "bij_vertex_api_calls_total", method="create", code="200") + 1
    )
    assert value(after, "bij_vertex_api_calls_total", method="list", code="200") > value(
        before, "bij_vertex_api_calls_total", method="list", code="200"
    )
    assert value(after, "bij_submissions_total", how="created") == 1
    assert value(after, "bij_jobs", phase="Succeeded") == 1 and value(after, "bij_jobs", phase="Running") == 0
    assert value(after, "bij_poll_round_seconds_count") > value(before, "bij_poll_round_seconds_count")
