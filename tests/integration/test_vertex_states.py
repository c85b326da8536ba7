"""The Vertex emulator reaches the states and timings Vertex reaches: a create completed after its client
gave up, CANCELLING, QUEUED behind a per-project limit, EXPIRED after the queue limit, PAUSED, UPDATING
and a stalled job. Through the real google-genai client and plain HTTP, as the operator meets them."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid
from typing import Any

import pytest
from google.genai import errors, types
from test_vertex_emulator import control, finished, submit

from conftest import eventually, genai_client, requests_rows, write_jsonl


def labelled(url: str, **http: Any) -> tuple[Any, str]:
    """A client whose jobs carry a fresh `run` label, and the LIST filter that finds them."""
    run = uuid.uuid4().hex[:12]
    return genai_client(url, extra_body={"labels": {"run": run}}, **http), f"labels.run={run}"


async def listed(client: Any, filter_text: str) -> list[Any]:
    return [job async for job in await client.aio.batches.list(config={"filter": filter_text})]


async def test_a_create_whose_client_timed_out_is_still_completed(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    await control(url, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "hangSeconds": 1.0}]})
    impatient, by_label = labelled(url, timeout=200)  # milliseconds
    with pytest.raises(TimeoutError):
        await submit(impatient, src, bucket, "impatient")
    assert engine.stats["create", 200] == 0, "the client gave up before the emulator answered"

    client = genai_client(url)
    [job] = await eventually(lambda: listed(client, by_label), timeout=10, message="the held create completed")
    assert job.display_name == "impatient" and engine.stats["create", 200] == 1
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.completion_stats.successful_count == 3
    assert len(await listed(client, by_label)) == 1, "exactly one job for the one create"


async def test_shutdown_and_reset_abandon_held_requests_without_waiting(bucket: Any, gcs: Any) -> None:
    from vertex_batch_emulator.engine import Config, Engine
    from vertex_batch_emulator.rest import serve
    from vertex_batch_emulator.storage import Storage

    loop = asyncio.get_running_loop()
    src = write_jsonl(bucket, "in.jsonl", requests_rows(1))
    async with serve(Engine(Storage(gcs.client()), Config(queue_seconds=0.05, min_run_seconds=0.05))) as (url, engine):
        client = genai_client(url)
        await control(url, "POST", "/emulator/v1/faults", {"api": [{"method": "list", "hangSeconds": 60}]})
        held = loop.create_task(client.aio.batches.list())
        await eventually(lambda: not engine.faults.api, message="the list is held")
        await control(url, "POST", "/emulator/v1/reset")
        with pytest.raises(errors.ServerError) as abandoned:
            await asyncio.wait_for(held, 5)
        assert (abandoned.value.code, abandoned.value.status) == (503, "UNAVAILABLE")

        await control(url, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "hangSeconds": 60}]})
        held = loop.create_task(submit(client, src, bucket))
        await eventually(lambda: not engine.faults.api, message="the create is held")
        started = loop.time()
    assert loop.time() - started < 5, "shutting down does not wait for a held request"
    with pytest.raises(errors.ServerError) as abandoned:
        await asyncio.wait_for(held, 5)
    assert abandoned.value.code == 503, "the held create was answered, not left hanging"


# ---------------------------------------------------------------- CANCELLING, QUEUED, EXPIRED


async def described(url: str, name: str) -> dict[str, Any]:
    """The control API's view of one job: its state history (`timeline`) and what Vertex does not show."""
    job_id = name.rsplit("/", 1)[-1]
    return next(job for job in (await control(url, "GET", "/emulator/v1/jobs"))["jobs"] if job["id"] == job_id)


def states(job: dict[str, Any]) -> list[str]:
    return [step["state"].removeprefix("JOB_STATE_") for step in job["timeline"]]


def seconds_in(job: dict[str, Any], state: str) -> float:
    """How long the job stayed in `state` (its first visit), from its timeline."""
    times = [datetime.datetime.strptime(step["time"], "%Y-%m-%dT%H:%M:%S.%fZ") for step in job["timeline"]]
    index = states(job).index(state)
    return (times[index + 1] - times[index]).total_seconds()


async def test_a_cancelled_pending_job_is_cancelling_for_a_while(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    await control(url, "PUT", "/emulator/v1/config", {"queueSeconds": 60, "cancellingSeconds": 0.6})
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(2)), bucket)
    await client.aio.batches.cancel(name=job.name)
    cancelling = await client.aio.batches.get(name=job.name)
    assert cancelling.state == types.JobState.JOB_STATE_CANCELLING and not cancelling.done
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED and done.error.code == 1
    assert done.start_time is None and done.output_info is None and done.completion_stats is None
    history = await described(url, job.name)
    assert states(history) == ["PENDING", "CANCELLING", "CANCELLED"]
    assert seconds_in(history, "CANCELLING") >= 0.6


async def test_a_cancelled_running_job_is_cancelling_until_its_time_is_up(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    await control(url, "PUT", "/emulator/v1/config", {"rowsPerSecond": 50, "cancellingSeconds": 0.6})
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(200)), bucket)
    emulated = engine.jobs[job.name.rsplit("/", 1)[-1]]
    await eventually(lambda: emulated.counts and emulated.counts.processed > 0, message="rows being processed")
    await client.aio.batches.cancel(name=job.name)
    assert (await client.aio.batches.get(name=job.name)).state == types.JobState.JOB_STATE_CANCELLING
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED and done.completion_stats.incomplete_count > 0
    history = await described(url, job.name)
    assert states(history) == ["PENDING", "RUNNING", "CANCELLING", "CANCELLED"]
    assert seconds_in(history, "CANCELLING") >= 0.6


async def test_cancelling_seconds_zero_cancels_a_pending_job_at_once(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    config = await control(url, "PUT", "/emulator/v1/config", {"queueSeconds": 60, "cancellingSeconds": 0})
    assert config["cancellingSeconds"] == 0
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(2)), bucket)
    await client.aio.batches.cancel(name=job.name)
    done = await finished(client, job.name, within=2)
    assert done.state == types.JobState.JOB_STATE_CANCELLED
    assert states(await described(url, job.name)) == ["PENDING", "CANCELLED"]


async def test_jobs_over_the_project_limit_wait_queued_in_order(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    config = await control(url, "PUT", "/emulator/v1/config", {"maxRunningJobsPerProject": 1, "rowsPerSecond": 40})
    assert config["maxRunningJobsPerProject"] == 1 and config["queueLimitSeconds"] == 72 * 3600
    client = genai_client(url)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(10))
    first, second, dropped, third = [await submit(client, src, bucket, f"job-{i}") for i in range(4)]
    assert first.state == types.JobState.JOB_STATE_PENDING
    assert {second.state, dropped.state, third.state} == {types.JobState.JOB_STATE_QUEUED}
    elsewhere = await submit(genai_client(url, project="other-project"), src, bucket, "elsewhere")
    assert elsewhere.state == types.JobState.JOB_STATE_PENDING, "the limit is per project"

    await client.aio.batches.cancel(name=dropped.name)
    runs = [await finished(client, job.name) for job in (first, second, third)]
    assert all(job.state == types.JobState.JOB_STATE_SUCCEEDED for job in runs)
    for earlier, later in itertools.pairwise(runs):
        assert later.start_time >= earlier.end_time, "one at a time, first in first out"
    assert states(await described(url, second.name)) == ["QUEUED", "PENDING", "RUNNING", "SUCCEEDED"]
    cancelled = await finished(client, dropped.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.start_time is None
    assert states(await described(url, dropped.name)) == ["QUEUED", "CANCELLING", "CANCELLED"]


async def test_raising_the_limit_lets_queued_jobs_in(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    await control(url, "PUT", "/emulator/v1/config", {"maxRunningJobsPerProject": 1, "queueSeconds": 60})
    client = genai_client(url)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(1))
    _, waiting = [await submit(client, src, bucket, f"job-{i}") for i in range(2)]
    assert waiting.state == types.JobState.JOB_STATE_QUEUED
    await control(url, "PUT", "/emulator/v1/config", {"maxRunningJobsPerProject": 0})
    assert (await client.aio.batches.get(name=waiting.name)).state == types.JobState.JOB_STATE_PENDING


async def test_a_job_pending_past_the_queue_limit_expires(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    await control(url, "PUT", "/emulator/v1/config", {"queueSeconds": 60, "queueLimitSeconds": 0.4})
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(2)), bucket)
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_EXPIRED and done.error is None
    assert done.start_time is None and done.output_info is None and done.completion_stats is None
    assert (done.end_time - done.create_time).total_seconds() >= 0.4


async def test_a_job_queued_past_the_queue_limit_expires_while_the_first_runs(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    await control(
        url, "PUT", "/emulator/v1/config", {"maxRunningJobsPerProject": 1, "rowsPerSecond": 10, "queueLimitSeconds": 1}
    )
    client = genai_client(url)
    running = await submit(client, write_jsonl(bucket, "slow.jsonl", requests_rows(30)), bucket, "slow")
    waiting = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(1)), bucket, "waiting")
    expired = await finished(client, waiting.name)
    assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.start_time is None
    assert states(await described(url, waiting.name)) == ["QUEUED", "EXPIRED"]
    assert (await client.aio.batches.get(name=running.name)).state == types.JobState.JOB_STATE_RUNNING
    done = await finished(client, running.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.completion_stats.successful_count == 30
