"""The same scenarios through two clients nobody here wrote: google-cloud-aiplatform's GAPIC
`JobServiceClient` over REST (enums as numbers, protobuf parsing of every answer) and google-genai.
Each must read every job and every state the emulator produces, and get errors as typed exceptions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud.aiplatform_v1 import BatchPredictionJob, JobState
from google.cloud.aiplatform_v1.services.job_service import JobServiceClient
from google.oauth2.credentials import Credentials
from vertex_http import contract_problems

from conftest import genai_client, requests_rows, write_jsonl

PARENT = "projects/demo-project/locations/us-central1"


def gapic(url: str) -> JobServiceClient:
    return JobServiceClient(
        credentials=Credentials(token="test-token"), transport="rest", client_options=ClientOptions(api_endpoint=url)
    )


def job_for(src: str, prefix: str, name: str, model: str = "gemini-2.0-flash") -> BatchPredictionJob:
    return BatchPredictionJob(
        display_name=name,
        model=f"publishers/google/models/{model}",
        input_config={"instances_format": "jsonl", "gcs_source": {"uris": [src]}},
        output_config={"predictions_format": "jsonl", "gcs_destination": {"output_uri_prefix": prefix}},
        labels={"bij-uid": "u-1", "équipe": "données"},
    )


def gapic_scenario(url: str, src: str, prefix: str) -> dict[str, Any]:
    client = gapic(url)
    created = client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job_for(src, prefix, "gapic"))
    assert created.model_version_id == "1" and created.create_time is not None
    queued = client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job_for(src, prefix, "queued"))
    listed = list(
        client.list_batch_prediction_jobs(request={"parent": PARENT, "page_size": 1, "filter": 'labels.bij-uid="u-1"'})
    )
    masked = list(
        client.list_batch_prediction_jobs(request={"parent": PARENT, "read_mask": {"paths": ["name", "state"]}})
    )
    client.cancel_batch_prediction_job(name=queued.name)
    with pytest.raises(exceptions.NotFound):
        client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job_for(src, prefix, "x", "gemini-0"))
    with pytest.raises(exceptions.BadRequest):
        client.create_batch_prediction_job(parent=PARENT, batch_prediction_job=job_for(src, prefix, "n" * 129))
    with pytest.raises(exceptions.BadRequest):
        list(
            client.list_batch_prediction_jobs(request={"parent": PARENT, "filter": 'createTime>"2026-01-01T00:00:00Z"'})
        )
    return {"created": created, "queued": queued, "listed": listed, "masked": masked, "client": client}


async def test_gapic_job_service_client_over_rest(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    engine.apply_config({"maxRunningJobsPerProject": 1, "recordExchanges": 1000})
    src, prefix = write_jsonl(bucket, "in.jsonl", requests_rows(3)), f"gs://{bucket.name}/out/"
    seen = await asyncio.to_thread(gapic_scenario, url, src, prefix)
    assert seen["queued"].state == JobState.JOB_STATE_QUEUED
    assert [job.name for job in seen["listed"]] == [seen["queued"].name, seen["created"].name]
    assert all(job.display_name == "" and job.state for job in seen["masked"])
    await engine.drain()
    client = seen["client"]
    done = await asyncio.to_thread(client.get_batch_prediction_job, name=seen["created"].name)
    assert done.state == JobState.JOB_STATE_SUCCEEDED and done.completion_stats.successful_count == 3
    assert done.output_info.gcs_output_directory.startswith(prefix + "prediction-model-")
    cancelled = await asyncio.to_thread(client.get_batch_prediction_job, name=seen["queued"].name)
    assert cancelled.state == JobState.JOB_STATE_CANCELLED and cancelled.error.code == 1
    operation = await asyncio.to_thread(client.delete_batch_prediction_job, name=done.name)
    await asyncio.to_thread(operation.result, timeout=10)
    again = await asyncio.to_thread(client.get_operation, {"name": operation.operation.name})
    assert again.done and again.name == operation.operation.name
    with pytest.raises(exceptions.NotFound):
        await asyncio.to_thread(client.get_batch_prediction_job, name=done.name)
    exchanges, problems = await contract_problems(url)
    assert problems == [] and {e["method"] for e in exchanges} >= {"create", "list", "get", "delete", "get_operation"}
    job_calls = [e for e in exchanges if e["method"] != "get_operation"]
    assert all("enum-encoding=int" in e["query"].get("$alt", "") for e in job_calls)


async def test_google_genai_reads_every_state(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    engine.apply_config({"maxRunningJobsPerProject": 1, "cancellingSeconds": 0.5, "recordExchanges": 1000})
    client = genai_client(url)
    src, dest = write_jsonl(bucket, "in.jsonl", requests_rows(3)), f"gs://{bucket.name}/out/"
    first = await client.aio.batches.create(
        model="gemini-2.0-flash", src=src, config={"dest": dest, "display_name": "a"}
    )
    second = await client.aio.batches.create(
        model="gemini-2.5-flash", src=src, config={"dest": dest, "display_name": "b"}
    )
    assert second.state.name == "JOB_STATE_QUEUED"
    await client.aio.batches.cancel(name=second.name)
    cancelling = await client.aio.batches.get(name=second.name)
    assert cancelling.state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    jobs = [job async for job in await client.aio.batches.list(config={"page_size": 1})]
    assert {job.name for job in jobs} == {first.name, second.name}
    await engine.drain()
    done = await client.aio.batches.get(name=first.name)
    assert done.state.name == "JOB_STATE_SUCCEEDED" and done.completion_stats.successful_count == 3
    deleted = await client.aio.batches.delete(name=first.name)
    assert deleted.done
    exchanges, problems = await contract_problems(url)
    assert problems == [] and {e["path"].split("/")[1] for e in exchanges} == {"v1beta1"}  # the SDK's default
