"""The Vertex emulator's BigQuery input and output, through google-genai and google-cloud-bigquery."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from google.genai import errors, types
from test_vertex_emulator import control, finished

from batch_inference_operator.core.keys import canonical
from conftest import genai_client, make_dataset, make_table, read_table, requests_rows, write_jsonl


async def bq_job(client: Any, src: str, dest: str, name: str = "bq-job") -> Any:
    job = await client.aio.batches.create(
        model="gemini-2.5-flash", src=src, config={"dest": dest, "display_name": name}
    )
    return await finished(client, job.name)


def tickets(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Request rows with passthrough columns of several types."""
    return [
        {**row, "priority": i % 3, "opened": f"2026-11-{1 + i % 28:02d}", "meta": {"queue": f"q{i % 2}"}}
        for i, row in zip(range(start, start + count), requests_rows(count, start=start), strict=True)
    ]


TICKET_COLUMNS = {"id": "STRING", "request": "JSON", "priority": "INT64", "opened": "DATE", "meta": "JSON"}


async def test_bigquery_to_bigquery_dataset_writes_a_predictions_table(
    vertex: Any, bigquery: Any, dataset: str
) -> None:
    url, engine = vertex
    client = genai_client(url)
    source = make_table(bigquery, f"{dataset}.tickets", tickets(40), TICKET_COLUMNS)
    done = await bq_job(client, source, f"bq://{dataset}")
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED, done.error
    table = done.output_info.bigquery_output_table
    assert table.startswith("predictions_") and done.completion_stats.successful_count == 40
    described = (await control(url, "GET", "/emulator/v1/jobs"))["jobs"][0]
    assert described["outputLocation"] == f"bq://{dataset}.{table}"

    out = read_table(bigquery, f"bq://{dataset}.{table}")
    assert sorted(r["id"] for r in out) == sorted(f"r{i}" for i in range(40)), "every row exactly once"
    by_id = {r["id"]: r for r in out}
    assert by_id["r7"]["priority"] == 1 and by_id["r7"]["opened"] == datetime.date(2026, 11, 8)
    assert by_id["r7"]["meta"] == {"queue": "q1"}, "passthrough columns keep their values and types"
    assert all(r["status"] == "" and r["response"]["candidates"] for r in out)
    echoed = by_id["r7"]["request"]  # re-serialized: the same request, with its unset members as nulls
    assert echoed != tickets(40)[7]["request"] and canonical(echoed) == canonical(tickets(40)[7]["request"])
    assert all(isinstance(r["processed_time"], datetime.datetime) for r in out)
    prompt = sum(r["response"]["usageMetadata"]["promptTokenCount"] for r in out)
    assert prompt > 0 and engine.stats["rows", 200] == 40


async def test_gcs_to_a_named_bigquery_table_infers_passthrough_columns(
    vertex: Any, bigquery: Any, dataset: str, bucket: Any
) -> None:
    url, _ = vertex
    client = genai_client(url)
    rows = [{**row, "score": i / 2, "rank": i, "vip": i % 2 == 0} for i, row in enumerate(requests_rows(12))]
    done = await bq_job(client, write_jsonl(bucket, "in.jsonl", rows), f"bq://{dataset}.answers")
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED, done.error
    assert done.output_info.bigquery_output_table == "answers"
    schema = {f.name: f.field_type for f in bigquery.client().get_table(f"{dataset}.answers").schema}
    assert schema["rank"] in ("INT64", "INTEGER") and schema["score"] in ("FLOAT64", "FLOAT")
    assert schema["vip"] in ("BOOL", "BOOLEAN") and schema["request"] == "JSON"
    out = {r["id"]: r for r in read_table(bigquery, f"bq://{dataset}.answers")}
    assert len(out) == 12 and out["r3"]["rank"] == 3 and out["r3"]["score"] == 1.5 and out["r3"]["vip"] is False


async def test_resume_from_the_previous_output_table(vertex: Any, bigquery: Any, dataset: str) -> None:
    url, engine = vertex
    client = genai_client(url)
    source = make_table(bigquery, f"{dataset}.tickets", tickets(50), TICKET_COLUMNS)
    await control(url, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.6}]})
    first = await bq_job(client, source, f"bq://{dataset}", "first")
    assert first.state == types.JobState.JOB_STATE_FAILED and first.completion_stats.incomplete_count == 20
    previous = f"bq://{dataset}.{first.output_info.bigquery_output_table}"
    partial = read_table(bigquery, previous)
    assert len(partial) == 50 and sum(1 for r in partial if r["response"] is None) == 20

    second = await bq_job(client, previous, f"bq://{dataset}", "second")
    assert second.state == types.JobState.JOB_STATE_SUCCEEDED, second.error
    assert second.output_info.bigquery_output_table != first.output_info.bigquery_output_table
    resumed = read_table(bigquery, f"bq://{dataset}.{second.output_info.bigquery_output_table}")
    assert sorted(r["id"] for r in resumed) == sorted(f"r{i}" for i in range(50)), "every row exactly once"
    assert all(r["response"] and r["status"] == "" for r in resumed)
    assert {r["id"]: r["priority"] for r in resumed}["r8"] == 2, "passthrough columns survive the resume"
    described = {j["displayName"]: j for j in (await control(url, "GET", "/emulator/v1/jobs"))["jobs"]}
    assert described["second"]["rows"] == {"processed": 20, "carried": 30}
    assert engine.stats["rows", 200] == 50, "carried rows are not run (nor billed) again"


async def test_row_faults_apply_to_bigquery_rows(vertex: Any, bigquery: Any, dataset: str) -> None:
    url, _ = vertex
    client = genai_client(url)
    rows = tickets(10)
    rows[4]["request"]["contents"][0]["parts"][0]["text"] = "flaky question"
    await control(url, "POST", "/emulator/v1/faults", {"rows": [{"code": 503, "match": "flaky"}]})
    done = await bq_job(client, make_table(bigquery, f"{dataset}.t", rows, TICKET_COLUMNS), f"bq://{dataset}.out")
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.completion_stats.failed_count == 1
    out = {r["id"]: r for r in read_table(bigquery, f"bq://{dataset}.out")}
    assert out["r4"]["status"].startswith("Service Unavailable: ") and out["r4"]["response"] == {}


@pytest.mark.parametrize(
    ("columns", "rows", "expected"),
    [
        ({"id": "STRING", "prompt": "JSON"}, [{"id": "a", "prompt": {"x": 1}}], "has no `request` column"),
        (
            {"id": "STRING", "request": "JSON", "status": "STRING"},
            [{"id": "a", "request": requests_rows(1)[0]["request"], "status": "open"}],
            "column `status` has a reserved name",
        ),
        (
            {"id": "STRING", "request": "JSON", "seen": "DATETIME"},
            [{"id": "a", "request": requests_rows(1)[0]["request"], "seen": "2026-01-01T00:00:00"}],
            "column `seen` is DATETIME",
        ),
        (
            {"id": "STRING", "request": "JSON"},
            [{"id": "a", "request": {**requests_rows(1)[0]["request"], "tools": [{"googleSearch": {}}]}}],
            "row 1: request.tools[].googleSearch is an empty object",
        ),
    ],
    ids=["no-request-column", "reserved-column", "datetime-passthrough", "bad-request-row"],
)
async def test_bad_input_tables_fail_the_job_with_code_3(
    vertex: Any, bigquery: Any, dataset: str, columns: dict[str, str], rows: list[dict[str, Any]], expected: str
) -> None:
    url, _ = vertex
    client = genai_client(url)
    done = await bq_job(client, make_table(bigquery, f"{dataset}.bad", rows, columns), f"bq://{dataset}")
    assert done.state == types.JobState.JOB_STATE_FAILED
    assert done.error.code == 3 and expected in done.error.message, done.error.message
    assert f"bq://{dataset}.bad" in done.error.message


async def test_tables_outside_the_job_region_fail_the_job(vertex: Any, bigquery: Any, dataset: str) -> None:
    url, _ = vertex
    client = genai_client(url)
    elsewhere = make_dataset(bigquery, f"demo-project.eu_{uuid.uuid4().hex[:8]}", "europe-west4")
    multi = make_dataset(bigquery, f"demo-project.us_{uuid.uuid4().hex[:8]}", "US")
    source = make_table(bigquery, f"{elsewhere}.tickets", tickets(3), TICKET_COLUMNS)
    done = await bq_job(client, source, f"bq://{dataset}")
    assert done.state == types.JobState.JOB_STATE_FAILED and done.error.code == 3
    assert "is in europe-west4, but the job runs in us-central1" in done.error.message

    local = make_table(bigquery, f"{dataset}.tickets", tickets(3), TICKET_COLUMNS)
    to_multi = await bq_job(client, local, f"bq://{multi}")
    assert to_multi.state == types.JobState.JOB_STATE_FAILED
    assert f"output dataset bq://{multi} is in US (a multi-region" in to_multi.error.message

    missing = await bq_job(client, local, "bq://demo-project.no_such_dataset")
    assert missing.error.code == 9 and "bq://demo-project.no_such_dataset does not exist" in missing.error.message


async def test_malformed_bigquery_uris_are_refused_at_create(vertex: Any) -> None:
    url, _ = vertex
    client = genai_client(url)
    with pytest.raises(errors.ClientError) as refused:
        await client.aio.batches.create(
            model="gemini-2.5-flash", src="bq://demo-project.only_dataset", config={"dest": "bq://demo-project.d"}
        )
    assert refused.value.code == 400 and "expected bq://project.dataset.table" in str(refused.value)
