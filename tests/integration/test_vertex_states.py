"""The Vertex emulator reaches the states and timings Vertex reaches: a create completed after its client
gave up, CANCELLING, QUEUED behind a per-project limit, EXPIRED after the queue limit, PAUSED, UPDATING
and a stalled job. Through the real google-genai client and plain HTTP, as the operator meets them."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid
from typing import Any

import aiohttp
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


# ---------------------------------------------------------------- PAUSED, UPDATING and a stalled job

QUIET_WINDOW = 0.5  # seconds in which a job let go would run 25 rows at 50 rows a second


async def running_job(url: str, engine: Any, bucket: Any, rows: int = 100) -> tuple[Any, str, Any]:
    """A job running 50 rows a second, caught with some rows done: (client, job name, emulated job)."""
    await control(url, "PUT", "/emulator/v1/config", {"rowsPerSecond": 50})
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(rows)), bucket)
    emulated = engine.jobs[job.name.rsplit("/", 1)[-1]]
    await eventually(lambda: emulated.counts and emulated.counts.processed >= 3, message="rows being processed")
    return client, job.name, emulated


async def job_call(url: str, name: str, action: str, body: Any = None) -> dict[str, Any]:
    return await control(url, "POST", f"/emulator/v1/jobs/{name.rsplit('/', 1)[-1]}:{action}", body)


async def held_between_rows(url: str, name: str) -> dict[str, Any]:
    """Wait until the worker has stopped at the gate: no row of the job is running any more."""
    path = f"/emulator/v1/jobs/{name.rsplit('/', 1)[-1]}"
    return await eventually(
        lambda: _if_held(control(url, "GET", path)), timeout=5, message="the worker waits between rows"
    )


async def _if_held(described_job: Any) -> dict[str, Any] | None:
    job = await described_job
    return job if job["heldBetweenRows"] else None


async def test_a_paused_job_keeps_its_counts_and_goes_on_when_unpaused(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, engine = vertex
    client, name, _ = await running_job(url, engine, bucket)
    paused = await job_call(url, name, "pause")
    assert paused["state"] == "JOB_STATE_PAUSED"
    frozen = (await held_between_rows(url, name))["completionStats"]
    seen = await client.aio.batches.get(name=name)
    assert seen.state == types.JobState.JOB_STATE_PAUSED and seen.completion_stats.successful_count >= 3
    await asyncio.sleep(QUIET_WINDOW)  # observing that nothing happens takes a while
    still = await client.aio.batches.get(name=name)
    assert still.state == types.JobState.JOB_STATE_PAUSED
    assert still.completion_stats.successful_count == frozen["successful"] == seen.completion_stats.successful_count
    assert (await described(url, name))["completionStats"] == frozen

    assert (await job_call(url, name, "unpause"))["state"] == "JOB_STATE_RUNNING"
    done = await finished(client, name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.completion_stats.successful_count == 100
    assert done.completion_stats.incomplete_count is None, "every row ran once the job went on"
    assert states(await described(url, name)) == ["PENDING", "RUNNING", "PAUSED", "RUNNING", "SUCCEEDED"]


async def test_a_paused_job_can_be_cancelled(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    client, name, _ = await running_job(url, engine, bucket)
    await job_call(url, name, "pause")
    await client.aio.batches.cancel(name=name)
    done = await finished(client, name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED and done.completion_stats.incomplete_count > 0
    assert states(await described(url, name)) == ["PENDING", "RUNNING", "PAUSED", "CANCELLING", "CANCELLED"]


async def test_an_updating_job_goes_back_to_running_and_does_not_end_meanwhile(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    client, name, emulated = await running_job(url, engine, bucket, rows=10)
    assert (await job_call(url, name, "update", {"seconds": 0.8}))["state"] == "JOB_STATE_UPDATING"
    assert (await client.aio.batches.get(name=name)).state == types.JobState.JOB_STATE_UPDATING
    await eventually(lambda: emulated.counts.processed == 10, message="rows go on while UPDATING")
    done = await finished(client, name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.completion_stats.successful_count == 10
    history = await described(url, name)
    assert states(history) == ["PENDING", "RUNNING", "UPDATING", "RUNNING", "SUCCEEDED"]
    assert seconds_in(history, "UPDATING") >= 0.8


async def test_a_cancel_while_updating_waits_for_running_then_cancels(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    client, name, _ = await running_job(url, engine, bucket)
    await job_call(url, name, "update", {"seconds": 0.3})
    await client.aio.batches.cancel(name=name)
    assert (await client.aio.batches.get(name=name)).state == types.JobState.JOB_STATE_UPDATING
    done = await finished(client, name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED
    assert states(await described(url, name)) == [
        "PENDING",
        "RUNNING",
        "UPDATING",
        "RUNNING",
        "CANCELLING",
        "CANCELLED",
    ], "UPDATING goes back to RUNNING only; CANCELLING follows"


async def test_a_stalled_job_stays_running_with_frozen_counts(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    client, name, _ = await running_job(url, engine, bucket)
    stalled = await job_call(url, name, "stall")
    assert stalled["state"] == "JOB_STATE_RUNNING" and stalled["stalled"] is True
    frozen = (await held_between_rows(url, name))["completionStats"]
    await asyncio.sleep(QUIET_WINDOW)  # observing that nothing happens takes a while
    still = await client.aio.batches.get(name=name)
    assert still.state == types.JobState.JOB_STATE_RUNNING
    assert still.completion_stats.successful_count == frozen["successful"]
    assert (await described(url, name))["completionStats"] == frozen

    unstalled = await job_call(url, name, "unstall")
    assert unstalled["stalled"] is False
    done = await finished(client, name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.completion_stats.successful_count == 100
    assert states(await described(url, name)) == ["PENDING", "RUNNING", "SUCCEEDED"]


async def test_a_job_stalled_before_it_runs_never_starts_rows_and_can_be_cancelled(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(5)), bucket)
    await job_call(url, job.name, "stall")
    held = await held_between_rows(url, job.name)
    assert held["state"] == "JOB_STATE_RUNNING" and held["rows"]["processed"] == 0
    assert held["startTime"] is not None, "it went on to RUNNING"
    await client.aio.batches.cancel(name=job.name)
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED and done.completion_stats.incomplete_count == 5


async def test_reset_releases_a_held_worker(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    _, name, emulated = await running_job(url, engine, bucket)
    await job_call(url, name, "pause")
    await held_between_rows(url, name)
    await asyncio.wait_for(control(url, "POST", "/emulator/v1/reset"), 5)
    assert engine.jobs == {}
    await eventually(lambda: not emulated.gate.waiting, timeout=5, message="the worker left the gate")


async def test_job_calls_in_the_wrong_state_are_refused(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    await control(url, "PUT", "/emulator/v1/config", {"queueSeconds": 60})
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(1)), bucket)
    path = f"/emulator/v1/jobs/{job.name.rsplit('/', 1)[-1]}"
    refusals = [
        (f"{path}:pause", None, 400, "FAILED_PRECONDITION", "in state JOB_STATE_PENDING"),
        (f"{path}:unpause", None, 400, "FAILED_PRECONDITION", "only a JOB_STATE_PAUSED job"),
        (f"{path}:update", {"seconds": 1}, 400, "FAILED_PRECONDITION", "only a JOB_STATE_RUNNING job"),
        (f"{path}:unstall", None, 400, "FAILED_PRECONDITION", "is not stalled"),
        (f"{path}:explode", None, 404, "NOT_FOUND", "not found"),
        ("/emulator/v1/jobs/123:pause", None, 404, "NOT_FOUND", "123"),
    ]
    async with aiohttp.ClientSession() as session:
        for call, body, code, status, text in refusals:
            async with session.post(url + call, json=body) as response:
                error = (await response.json())["error"]
                assert (response.status, error["status"]) == (code, status), call
                assert text in error["message"], (call, error["message"])
    await job_call(url, job.name, "stall")
    async with aiohttp.ClientSession() as session, session.post(f"{url}{path}:stall") as again:
        assert again.status == 400 and "stalled already" in (await again.json())["error"]["message"]
    await control(url, "PUT", "/emulator/v1/config", {"queueSeconds": 0.05})
    await held_between_rows(url, job.name)
    async with aiohttp.ClientSession() as session, session.post(f"{url}{path}:update", json={"seconds": -1}) as bad:
        assert bad.status == 400 and "seconds" in (await bad.json())["error"]["message"]


async def test_config_describes_and_checks_the_new_keys(vertex: Any) -> None:
    url, engine = vertex
    config = await control(url, "GET", "/emulator/v1/config")
    assert {key: config[key] for key in ("cancellingSeconds", "maxRunningJobsPerProject", "queueLimitSeconds")} == {
        "cancellingSeconds": 0.5,
        "maxRunningJobsPerProject": 0,
        "queueLimitSeconds": 259200.0,
    }
    for bad in ({"cancellingSeconds": -1}, {"maxRunningJobsPerProject": "many"}, {"queueLimit": 5}):
        async with aiohttp.ClientSession() as session, session.put(url + "/emulator/v1/config", json=bad) as response:
            assert response.status == 400, bad
    mixed = {"queueSeconds": 3, "cancellingSeconds": -1}
    async with aiohttp.ClientSession() as session, session.put(url + "/emulator/v1/config", json=mixed) as response:
        assert response.status == 400
    assert engine.config.queue_seconds == 0.05, "a refused update changes nothing"
