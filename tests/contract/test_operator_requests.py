"""What the operator sends Vertex, held to the discovery document: every create body it builds (for
Cloud Storage and BigQuery, with its own labels) is a valid BatchPredictionJob request with no
output-only fields, and every call it makes (create, get, the poll round's filtered list, the
adoption lookup, cancel) is accepted by the stricter emulator, whose answers keep the contract."""

from __future__ import annotations

import datetime
from typing import Any

import aiohttp
from discovery import check_exchange

from batch_inference_operator.adapters.vertex import Vertex
from batch_inference_operator.core.identity import attempt_labels, managed_labels
from batch_inference_operator.core.vertex_jobs import JobRequest
from batch_inference_operator.settings import Settings
from conftest import requests_rows, write_jsonl


async def test_the_operators_calls_keep_the_contract(vertex: Any, bucket: Any, dataset: str) -> None:
    url, engine = vertex
    engine.apply_config({"recordExchanges": 10_000})
    adapter = Vertex(Settings(vertex_endpoint=url, vertex_token="test-token", vertex_timeout=10))
    labels = {**managed_labels(), **attempt_labels("0f1e2d3c-uid", 1), "équipe": "données"}
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    outputs = (f"gs://{bucket.name}/out/", f"bq://{dataset}")
    created = []
    for attempt, output in enumerate(outputs, 1):
        request = JobRequest(
            project="demo-project",
            location="us-central1",
            model="gemini-2.0-flash",
            display_name=f"team-a-reviews-{attempt}",
            input_uris=(src,),
            output_uri=output,
            labels=labels,
        )
        created.append(await adapter.create(request, attempt))
    polled = await adapter.list_managed("demo-project", "us-central1", before)
    assert {job.name for job in polled} == {job.name for job in created}
    found = await adapter.find_by_labels("demo-project", "us-central1", attempt_labels("0f1e2d3c-uid", 1))
    assert len(found) == 2
    await engine.drain()
    for job in created:
        done = await adapter.get("demo-project", "us-central1", job.name)
        assert done.state == "JOB_STATE_SUCCEEDED" and done.output_location, done
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    assert await adapter.list_managed("demo-project", "us-central1", later) == []
    async with aiohttp.ClientSession() as session, session.get(url + "/emulator/v1/exchanges") as response:
        exchanges = (await response.json())["exchanges"]
    creates = [exchange for exchange in exchanges if exchange["method"] == "create"]
    assert len(creates) == 2 and all(exchange["status"] == 200 for exchange in creates)
    assert all(exchange["status"] == 200 for exchange in exchanges), [e for e in exchanges if e["status"] != 200]
    assert any("create_time>=" in exchange["query"].get("filter", "") for exchange in exchanges)
    problems = [problem for exchange in exchanges for problem in check_exchange(exchange)]
    assert problems == [], "\n".join(problems[:40])
