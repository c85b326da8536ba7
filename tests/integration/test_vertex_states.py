"""The Vertex emulator reaches the states and timings Vertex reaches: a create completed after its client
gave up, CANCELLING, QUEUED behind a per-project limit, EXPIRED after the queue limit, PAUSED, UPDATING
and a stalled job. Through the real google-genai client and plain HTTP, as the operator meets them."""

from __future__ import annotations

import asyncio
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
