"""The Vertex batch emulator through the real google-genai client (async and sync) and raw HTTP."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import aiohttp
import pytest
from google.genai import errors, types

from conftest import eventually, genai_client, read_jsonl, requests_rows, write_jsonl


async def finished(client: Any, name: str, within: float = 20) -> Any:
    async def poll() -> Any:
        job = await client.aio.batches.get(name=name)
        return (
            job
            if job.state.name
            in {
                "JOB_STATE_SUCCEEDED",
                "JOB_STATE_FAILED",
                "JOB_STATE_CANCELLED",
                "JOB_STATE_EXPIRED",
                "JOB_STATE_PARTIALLY_SUCCEEDED",
            }
            else None
        )

    return await eventually(poll, timeout=within, interval=0.05, message=f"{name} finished")


async def submit(client: Any, src: str, bucket: Any, name: str = "job", **config: Any) -> Any:
    return await client.aio.batches.create(
        model=config.pop("model", "gemini-2.5-flash"),
        src=src,
        config={"dest": f"gs://{bucket.name}/out/", "display_name": name, **config},
    )


async def control(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as session, session.request(method, url + path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_create_get_list_and_output_with_the_async_client(vertex: Any, gcs: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(40))
    job = await submit(client, src, bucket, "first")
    assert job.state == types.JobState.JOB_STATE_PENDING
    project_number, job_id = job.name.split("/")[1], job.name.rsplit("/", 1)[-1]
    assert project_number.isdigit() and job_id.isdigit() and len(job_id) == 19
    assert job.display_name == "first" and job.model == "publishers/google/models/gemini-2.5-flash"
    assert job.src.gcs_uri == [src] and job.dest.gcs_uri == f"gs://{bucket.name}/out/"
    assert isinstance(job.create_time, datetime.datetime) and job.start_time is None and job.completion_stats is None

    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.error is None
    assert done.start_time >= done.create_time and done.end_time >= done.start_time
    assert done.completion_stats.successful_count == 40
    assert done.completion_stats.failed_count is None, "zero counts are omitted, as Vertex omits them"
    directory = done.output_info.gcs_output_directory
    assert directory.startswith(f"gs://{bucket.name}/out/prediction-model-")
    rows = read_jsonl(gcs, f"{directory}/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(40)), "every row once, ids echoed"
    assert [r["id"] for r in rows] != [f"r{i}" for i in range(40)], "output order differs from input order"
    row = rows[0]
    assert row["status"] == "" and row["processed_time"].endswith("+00:00")
    assert row["response"]["candidates"][0]["content"]["parts"][0]["text"].startswith("gemini-2.5-flash answer")
    assert row["response"]["usageMetadata"]["promptTokenCount"] > 0

    listed = [j.name async for j in await client.aio.batches.list()]
    assert listed == [job.name]


async def test_sync_client_and_v1(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url, api_version="v1")
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))

    def run() -> Any:
        job = client.batches.create(
            model="gemini-2.5-pro", src=src, config={"dest": f"gs://{bucket.name}/out/", "display_name": "sync"}
        )
        same = client.batches.get(name=job.name)
        listed = list(client.batches.list(config={"page_size": 10}))
        return job, same, listed

    job, same, listed = await asyncio.to_thread(run)
    assert same.name == job.name and [j.name for j in listed] == [job.name]
    done = await finished(client, job.name)
    assert done.completion_stats.successful_count == 3
    deleted = await asyncio.to_thread(client.batches.delete, name=job.name)
    assert deleted.done is True
    with pytest.raises(errors.ClientError) as missing:
        await asyncio.to_thread(client.batches.get, name=job.name)
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")
    _, engine = vertex
    assert engine.stats["create", 200] == 1


async def test_labels_are_stored_and_filterable(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    for uid in ("u1", "u2"):
        client = genai_client(url, extra_body={"labels": {"bij-uid": uid, "bij-attempt": "1"}})
        await submit(client, src, bucket, f"job-{uid}")
    client = genai_client(url)
    matching = [j.display_name async for j in await client.aio.batches.list(config={"filter": "labels.bij-uid=u2"})]
    assert matching == ["job-u2"]
    both = await client.aio.batches.list(config={"filter": 'labels.bij-uid:* AND labels.bij-attempt="1"'})
    assert sorted([j.display_name async for j in both]) == ["job-u1", "job-u2"]
    stored = await control(url, "GET", "/emulator/v1/jobs")
    assert [j["labels"] for j in stored["jobs"]] == [
        {"bij-uid": "u1", "bij-attempt": "1"},
        {"bij-uid": "u2", "bij-attempt": "1"},
    ]


async def test_list_pages_through_every_job(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(1))
    created = [(await submit(client, src, bucket, f"job-{i}")).name for i in range(7)]
    pager = await client.aio.batches.list(config={"page_size": 3})
    assert len(pager.page) == 3, "the first page holds page_size jobs"
    seen = [job.name async for job in pager]
    assert seen == list(reversed(created)), "newest first, each job once across pages"
    first = await client.aio.batches.list(config={"page_size": 3, "filter": 'display_name:"job-*"'})
    assert len(first.page) == 3


async def test_api_errors_reach_the_sdk_with_code_and_status(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    with pytest.raises(errors.ClientError) as unknown:
        await submit(client, src, bucket, model="gemini-does-not-exist")
    assert (unknown.value.code, unknown.value.status) == (404, "NOT_FOUND")
    assert "gemini-does-not-exist" in unknown.value.message

    with pytest.raises(errors.ClientError) as bad_filter:
        await client.aio.batches.list(config={"filter": "state="})
    assert bad_filter.value.code == 400

    bad_labels = genai_client(url, extra_body={"labels": {"Bad Key": "x"}})
    with pytest.raises(errors.ClientError):
        await submit(bad_labels, src, bucket)

    job = await submit(client, src, bucket, "slow")
    with pytest.raises(errors.ClientError) as running:
        await client.aio.batches.delete(name=job.name)
    assert (running.value.code, running.value.status) == (400, "FAILED_PRECONDITION")

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1beta1/projects/demo-project/locations/us-central1/batchPredictionJobs") as response,
    ):
        assert response.status == 401
        assert (await response.json())["error"]["status"] == "UNAUTHENTICATED"


async def test_cancel_a_running_job(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, engine = vertex
    engine.apply_config({"rowsPerSecond": 50})
    client = genai_client(url)
    job = await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(200)), bucket)
    emulated = engine.jobs[job.name.rsplit("/", 1)[-1]]
    await eventually(lambda: emulated.counts and emulated.counts.processed > 0, message="rows being processed")
    await client.aio.batches.cancel(name=job.name)
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED and done.error.code == 1
    stats = done.completion_stats
    assert stats.incomplete_count > 0 and (stats.successful_count or 0) + stats.incomplete_count == 200
    rows = read_jsonl(gcs, f"{done.output_info.gcs_output_directory}/predictions.jsonl")
    assert len(rows) == 200, "finished rows are kept; unfinished ones are in the output without a response"
    with pytest.raises(errors.ClientError) as again:
        await client.aio.batches.cancel(name=job.name)
    assert again.value.status == "FAILED_PRECONDITION"
    timeline = [step["state"] for step in engine.jobs[job.name.rsplit("/", 1)[-1]].timeline]
    assert timeline == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"]


async def test_missing_bucket_fails_the_job_later_with_code_9(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    job = await client.aio.batches.create(
        model="gemini-2.5-flash",
        src="gs://no-such-bucket-x/in.jsonl",
        config={"dest": f"gs://{bucket.name}/out/", "display_name": "nb"},
    )
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_FAILED and done.error.code == 9
    assert "no-such-bucket-x" in done.error.message


async def test_bad_input_line_fails_the_whole_job_with_code_3(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    rows = requests_rows(5)
    rows[3]["request"]["tools"] = [{"googleSearch": {}}]
    job = await submit(client, write_jsonl(bucket, "in.jsonl", rows), bucket)
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_FAILED and done.error.code == 3
    assert "in.jsonl line 4" in done.error.message and "empty object" in done.error.message
    assert done.completion_stats is None


async def test_wildcards_and_several_files(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    write_jsonl(bucket, "parts/a.jsonl", requests_rows(3))
    write_jsonl(bucket, "parts/b.jsonl", requests_rows(4, start=3))
    write_jsonl(bucket, "parts/skip.txt", requests_rows(1, start=99))
    job = await submit(client, f"gs://{bucket.name}/parts/*.jsonl", bucket)
    done = await finished(client, job.name)
    rows = read_jsonl(gcs, f"{done.output_info.gcs_output_directory}/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(7))


async def test_row_faults_and_resume_pass_through(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, engine = vertex
    client = genai_client(url)
    rows = requests_rows(60)
    rows[5]["request"]["contents"][0]["parts"][0]["text"] = "forbidden topic"
    await control(
        url,
        "POST",
        "/emulator/v1/faults",
        {
            "rows": [
                {"code": 400, "match": "forbidden topic"},
                {"code": 429, "rate": 0.3, "seed": 3},
            ]
        },
    )
    first = await finished(client, (await submit(client, write_jsonl(bucket, "in.jsonl", rows), bucket)).name)
    assert first.state == types.JobState.JOB_STATE_SUCCEEDED, "row failures do not fail the job"
    failed_first = first.completion_stats.failed_count
    assert failed_first >= 2
    output = f"{first.output_info.gcs_output_directory}/predictions.jsonl"
    out_rows = read_jsonl(gcs, output)
    statuses = {r["id"]: r["status"] for r in out_rows}
    assert statuses["r5"].startswith("Bad Request: ") and '"code": 400' in statuses["r5"]
    assert any(s.startswith("Too Many Requests: ") for s in statuses.values())
    assert all(r["response"] == {} for r in out_rows if r["status"])

    # Resume: the previous output is the next input. Successes pass through; failures are run again.
    second = await finished(client, (await submit(client, output, bucket, "resume")).name)
    resumed = read_jsonl(gcs, f"{second.output_info.gcs_output_directory}/predictions.jsonl")
    assert sorted(r["id"] for r in resumed) == sorted(f"r{i}" for i in range(60)), "every row exactly once"
    described = {j["displayName"]: j for j in (await control(url, "GET", "/emulator/v1/jobs"))["jobs"]}
    assert described["resume"]["rows"] == {"processed": failed_first, "carried": 60 - failed_first}
    carried = {r["id"]: r for r in out_rows if not r["status"]}
    assert all(carried[r["id"]] == r for r in resumed if r["id"] in carried), "carried rows are untouched"
    assert {r["id"]: r["status"] for r in resumed}["r5"].startswith("Bad Request"), "a 400 fails again"
    assert second.completion_stats.successful_count + (second.completion_stats.failed_count or 0) == 60
    assert engine.stats["rows", 200] + engine.stats["rows", 400] + engine.stats["rows", 429] == 60 + failed_first


async def test_row_fault_times_fails_only_the_first_attempt(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    rows = requests_rows(4)
    rows[1]["request"]["contents"][0]["parts"][0]["text"] = "flaky one"
    await control(url, "POST", "/emulator/v1/faults", {"rows": [{"code": 500, "match": "flaky", "times": 1}]})
    first = await finished(client, (await submit(client, write_jsonl(bucket, "in.jsonl", rows), bucket)).name)
    assert first.completion_stats.failed_count == 1
    out = read_jsonl(gcs, f"{first.output_info.gcs_output_directory}/predictions.jsonl")
    assert {r["id"]: r["status"] for r in out}["r1"].startswith("Internal error occurred.")
    second = await finished(
        client,
        (await submit(client, f"{first.output_info.gcs_output_directory}/predictions.jsonl", bucket, "again")).name,
    )
    assert second.completion_stats.successful_count == 4 and second.completion_stats.failed_count is None


async def test_output_rows_echo_extra_fields_re_serialize_the_request_and_come_out_reordered(
    vertex: Any, bucket: Any, gcs: Any
) -> None:
    """As on Vertex: join on a key, never on position or on the request's text."""
    url, _ = vertex
    client = genai_client(url)
    rows = [
        {"key": f"k{i}", "request": {"system_instruction": {"parts": [{"text": "brief"}]}, **row["request"]}}
        for i, row in enumerate(requests_rows(80))
    ]
    done = await finished(client, (await submit(client, write_jsonl(bucket, "in.jsonl", rows), bucket)).name)
    out = read_jsonl(gcs, f"{done.output_info.gcs_output_directory}/predictions.jsonl")
    assert sorted(r["key"] for r in out) == sorted(r["key"] for r in rows), "the extra field on every row"
    assert [r["key"] for r in out] != [r["key"] for r in rows], "not in input order"
    echoed = {r["key"]: r["request"] for r in out}["k3"]
    assert "system_instruction" not in echoed and echoed["systemInstruction"] == {
        "parts": [{"text": "brief", "inlineData": None, "fileData": None}]
    }
    assert echoed["contents"][0]["parts"][0] == {"text": "question 3", "inlineData": None, "fileData": None}


async def test_a_drop_fault_leaves_a_row_out_of_the_output_once(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    rows = requests_rows(6)
    rows[2]["request"]["contents"][0]["parts"][0]["text"] = "lost one"
    await control(url, "POST", "/emulator/v1/faults", {"rows": [{"drop": True, "match": "lost one", "times": 1}]})
    first = await finished(client, (await submit(client, write_jsonl(bucket, "in.jsonl", rows), bucket)).name)
    assert first.state.name == "JOB_STATE_SUCCEEDED" and first.completion_stats.successful_count == 6
    out = read_jsonl(gcs, f"{first.output_info.gcs_output_directory}/predictions.jsonl")
    assert sorted(r["id"] for r in out) == ["r0", "r1", "r3", "r4", "r5"], "r2 is in no output row"
    again = await finished(client, (await submit(client, write_jsonl(bucket, "r2.jsonl", [rows[2]]), bucket)).name)
    out = read_jsonl(gcs, f"{again.output_info.gcs_output_directory}/predictions.jsonl")
    assert [r["id"] for r in out] == ["r2"], "times: 1 drops it only once"


async def test_a_drop_fault_with_a_code_is_refused(vertex: Any) -> None:
    url, _ = vertex
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/emulator/v1/faults", json={"rows": [{"drop": True, "code": 500}]}) as response,
    ):
        assert response.status == 400 and "not both" in await response.text()


@pytest.mark.parametrize(
    ("outcome", "state", "code"),
    [
        ("FAILED", "JOB_STATE_FAILED", 13),
        ("CANCELLED", "JOB_STATE_CANCELLED", 1),
        ("PARTIALLY_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", None),
    ],
)
async def test_job_outcome_faults_stop_after_a_fraction(
    vertex: Any, bucket: Any, gcs: Any, outcome: str, state: str, code: int | None
) -> None:
    url, _ = vertex
    client = genai_client(url)
    await control(url, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": outcome, "afterFraction": 0.6}]})
    done = await finished(
        client, (await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(50)), bucket)).name
    )
    assert done.state.name == state
    assert (done.error.code if done.error else None) == code
    assert done.completion_stats.successful_count == 30 and done.completion_stats.incomplete_count == 20
    rows = read_jsonl(gcs, f"{done.output_info.gcs_output_directory}/predictions.jsonl")
    assert len(rows) == 50 and sum(1 for r in rows if "response" not in r) == 20
    next_job = await finished(
        client, (await submit(client, write_jsonl(bucket, "b.jsonl", requests_rows(5)), bucket, "next")).name
    )
    assert next_job.state == types.JobState.JOB_STATE_SUCCEEDED, "a job fault applies to one job by default"


async def test_expired_job_never_runs(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    await control(
        url, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "EXPIRED", "match": {"displayName": "q*"}}]}
    )
    done = await finished(
        client, (await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(3)), bucket, "queued")).name
    )
    assert done.state == types.JobState.JOB_STATE_EXPIRED
    assert done.start_time is None and done.output_info is None and done.completion_stats is None


async def test_api_faults_answer_codes_then_recover_and_can_hang(vertex: Any, bucket: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(1))
    await control(
        url,
        "POST",
        "/emulator/v1/faults",
        {"api": [{"method": "create", "code": 429, "count": 3}, {"method": "get", "code": 503}]},
    )
    for _ in range(3):
        with pytest.raises(errors.ClientError) as limited:
            await submit(client, src, bucket)
        assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    job = await submit(client, src, bucket)
    with pytest.raises(errors.ServerError) as unavailable:
        await client.aio.batches.get(name=job.name)
    assert unavailable.value.code == 503
    stats = await control(url, "GET", "/emulator/v1/stats")
    assert stats["requests"]["create"] == {"200": 1, "429": 3} and stats["requests"]["get"] == {"503": 1}

    await control(url, "POST", "/emulator/v1/faults", {"api": [{"method": "list", "hangSeconds": 0.5}]})
    started = asyncio.get_running_loop().time()
    await client.aio.batches.list()
    assert asyncio.get_running_loop().time() - started >= 0.5


async def test_implicit_cache_through_a_job(vertex: Any, bucket: Any, gcs: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    shared = "Context: " + "lorem ipsum " * 1100  # about 3,300 tokens shared by every request
    rows = requests_rows(10, prefix=shared)
    done = await finished(client, (await submit(client, write_jsonl(bucket, "in.jsonl", rows), bucket)).name)
    out = read_jsonl(gcs, f"{done.output_info.gcs_output_directory}/predictions.jsonl")
    cached = [r["response"]["usageMetadata"].get("cachedContentTokenCount", 0) for r in out]
    assert sorted(cached) == [0] + [3072] * 9, "the first request fills the cache, the rest hit whole blocks"
    for row in out:
        usage = row["response"]["usageMetadata"]
        assert usage.get("cachedContentTokenCount", 0) <= usage["promptTokenCount"]


async def test_control_api_reset_and_config(vertex: Any, bucket: Any) -> None:
    url, engine = vertex
    client = genai_client(url)
    await submit(client, write_jsonl(bucket, "in.jsonl", requests_rows(1)), bucket)
    config = await control(url, "PUT", "/emulator/v1/config", {"queueSeconds": 0.2, "cacheThresholdTokens": 1024})
    assert config["queueSeconds"] == 0.2 and engine.cache.threshold_tokens == 1024
    await control(url, "POST", "/emulator/v1/faults", {"api": [{"method": "get", "code": 500}]})
    await control(url, "POST", "/emulator/v1/reset")
    assert (await control(url, "GET", "/emulator/v1/jobs")) == {"jobs": []}
    assert (await control(url, "GET", "/emulator/v1/faults"))["api"] == []
    assert (await control(url, "GET", "/emulator/v1/stats")) == {"requests": {}, "rows": {}}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/emulator/v1/faults", json={"jobs": [{"outcome": "EXPLODED"}]}) as bad,
    ):
        assert bad.status == 400 and "outcome" in (await bad.json())["error"]["message"]
