"""The emulator parses and answers as Vertex's front end does: one test per finding of the contract check.

Each of these passed a request Vertex refuses, refused one it accepts, or answered in a shape Vertex
never uses, before the emulator read requests as proto3 JSON against the discovery document.
"""

from __future__ import annotations

import datetime
from typing import Any

import aiohttp
import pytest
from vertex_http import PARENT, Api, gcs_body

from conftest import genai_client, read_jsonl, read_table, requests_rows, write_jsonl

JOBS = PARENT + "/batchPredictionJobs"


@pytest.fixture
async def api(vertex: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Api(session, vertex[0])


@pytest.fixture
def body(bucket: Any) -> dict[str, Any]:
    return gcs_body(write_jsonl(bucket, "in.jsonl", requests_rows(3)), f"gs://{bucket.name}/out/")


def field_of(error: dict[str, Any]) -> str:
    return error["error"]["details"][0]["fieldViolations"][0]["field"]


@pytest.mark.parametrize(
    ("change", "field", "named"),
    [
        ({"colour": "red"}, "batch_prediction_job", '"colour"'),
        ({"inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://b/x"], "glob": "*"}}},
         "batch_prediction_job.input_config.gcs_source", '"glob"'),
        ({"displayName": 123}, "batch_prediction_job.display_name", "TYPE_STRING"),
        ({"labels": {"team": 5}}, "batch_prediction_job.labels[team]", "TYPE_STRING"),
        ({"displayName": "n" * 129}, "batch_prediction_job.display_name", "128"),
        ({"labels": {"Team": "x"}}, "batch_prediction_job.labels[Team]", "lowercase"),
        ({"labels": {"team": "v" * 65}}, "batch_prediction_job.labels[team]", "64"),
        ({"serviceAccount": "sa@p.iam.gserviceaccount.com"}, "batch_prediction_job.service_account", "not supported"),
    ],
)  # fmt: skip
async def test_a_create_body_vertex_refuses_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], change: dict[str, Any], field: str, named: str
) -> None:
    status, error = await api.call("POST", JOBS, {**body, **change})
    assert status == 400 and error["error"]["status"] == "INVALID_ARGUMENT", error
    assert field_of(error) == field and named in error["error"]["message"], error
    status, listed = await api.call("GET", JOBS)
    assert status == 200 and listed == {}, "a refused create made a job"


async def test_what_vertex_accepts_is_accepted_in_its_canonical_form(
    api: Api, body: dict[str, Any], vertex: Any
) -> None:
    labels = {"équipe": "données", "チーム": "検索", "bij-uid": "", "k" * 64: "v" * 64}
    snake = {"display_name": "d" * 128, "model": "publishers/google/models/gemini-2.0-flash", "labels": labels}
    snake["input_config"] = {
        "instances_format": "jsonl",
        "gcs_source": {"uris": body["inputConfig"]["gcsSource"]["uris"]},
    }
    snake["output_config"] = {"predictionsFormat": "jsonl", "gcsDestination": body["outputConfig"]["gcsDestination"]}
    snake["state"] = "JOB_STATE_SUCCEEDED"  # output-only: ignored, as the front end ignores it
    status, job = await api.call("POST", JOBS, snake)
    assert status == 200, job
    assert job["displayName"] == "d" * 128 and job["labels"] == labels and job["state"] != "JOB_STATE_SUCCEEDED"
    assert job["inputConfig"] == {"instancesFormat": "jsonl", "gcsSource": snake["input_config"]["gcs_source"]}
    assert job["modelVersionId"] == "1"
    # google-genai reads every job of the location, including this one
    jobs = [j async for j in await genai_client(vertex[0]).aio.batches.list()]
    assert [j.name for j in jobs] == [job["name"]]


async def test_page_sizes_follow_aip_158_and_read_mask_is_honoured(api: Api, body: dict[str, Any]) -> None:
    for _ in range(3):
        await api.create(body)
    status, error = await api.call("GET", JOBS, pageSize=-1)
    assert status == 400 and error["error"]["status"] == "INVALID_ARGUMENT" and field_of(error) == "page_size"
    status, page = await api.call("GET", JOBS, pageSize=100_000)
    assert status == 200 and len(page["batchPredictionJobs"]) == 3 and "nextPageToken" not in page
    status, page = await api.call("GET", JOBS, pageSize=2, readMask="name,state,inputConfig.instancesFormat")
    assert status == 200 and len(page["batchPredictionJobs"]) == 2 and page["nextPageToken"]
    for job in page["batchPredictionJobs"]:
        assert set(job) == {"name", "state", "inputConfig"} and job["inputConfig"] == {"instancesFormat": "jsonl"}
    status, error = await api.call("GET", JOBS, readMask="name,colour")
    assert status == 400 and "colour" in error["error"]["message"]
    status, error = await api.call("GET", JOBS, colour="red")
    assert status == 400 and '"colour"' in error["error"]["message"]


async def test_filters_take_the_documented_fields_only(api: Api, body: dict[str, Any]) -> None:
    job = await api.create(body)
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for text in (
        f'create_time>="{since}"',
        'model_display_name="gemini-2.5-flash"',
        'labels.bij-uid="u-1" AND labels.team:*',
        'display_name:"contr*"',
    ):
        status, page = await api.call("GET", JOBS, filter=text)
        assert status == 200 and [j["name"] for j in page.get("batchPredictionJobs", [])] == [job["name"]], text
    for text in (f'createTime>="{since}"', 'displayName="contract"', "state=RUNNING"):
        status, error = await api.call("GET", JOBS, filter=text)
        assert status == 400 and error["error"]["status"] == "INVALID_ARGUMENT", text


async def test_methods_and_paths_as_documented(api: Api, body: dict[str, Any], vertex: Any) -> None:
    job = await api.create(body)
    # PATCH: no such method; the answer's code, status and HTTP status agree
    status, error = await api.call("PATCH", "/v1/" + job["name"], {"displayName": "x"})
    assert status == 404 and error["error"]["code"] == 404 and error["error"]["status"] == "NOT_FOUND"
    # the flat list path of the discovery document
    status, page = await api.call(
        "GET", "/v1/batchPredictionJobs", parent="projects/demo-project/locations/us-central1"
    )
    assert status == 200 and [j["name"] for j in page["batchPredictionJobs"]] == [job["name"]]
    status, error = await api.call("GET", "/v1/batchPredictionJobs")
    assert status == 400 and field_of(error) == "parent"
    status, flat = await api.call("GET", "/v1/batchPredictionJobs/" + job["name"].rsplit("/", 1)[1])
    assert status == 200 and flat["name"] == job["name"]
    status, error = await api.call("GET", "/v1/batchPredictionJobs/42")
    assert status == 404 and error["error"]["status"] == "NOT_FOUND"
    # delete's Operation can be read back
    await vertex[1].drain()
    status, operation = await api.call("DELETE", "/v1/" + job["name"])
    assert status == 200 and operation["done"] is True
    status, again = await api.call("GET", "/v1/" + operation["name"])
    assert status == 200 and again == operation
    # a location that serves no batch prediction
    status, error = await api.call("GET", "/v1/projects/demo-project/locations/mars-north9/batchPredictionJobs")
    assert status == 400 and "mars-north9" in error["error"]["message"] and field_of(error) == "parent"
    assert error["error"]["message"].startswith("List of found errors:\t1.Field: parent;")


async def test_outputs_are_named_from_the_create_time(
    api: Api, body: dict[str, Any], vertex: Any, gcs: Any, bigquery: Any
) -> None:
    job = await api.create(body)
    await vertex[1].drain()
    _status, done = await api.call("GET", "/v1/" + job["name"])
    created = datetime.datetime.fromisoformat(done["createTime"].replace("Z", "+00:00"))
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert done["state"] == "JOB_STATE_SUCCEEDED" and done["startTime"] != done["createTime"]
    assert done["outputInfo"]["gcsOutputDirectory"] == body["outputConfig"]["gcsDestination"]["outputUriPrefix"] + (
        f"prediction-model-{stamp}"
    )
    assert len(read_jsonl(gcs, done["outputInfo"]["gcsOutputDirectory"] + "/predictions.jsonl")) == 3
    # bq://project: Vertex creates the dataset prediction_<model>_<time> in the job's region
    project_only = {
        **body,
        "outputConfig": {"predictionsFormat": "bigquery", "bigqueryDestination": {"outputUri": "bq://demo-project"}},
    }
    job = await api.create(project_only)
    await vertex[1].drain()
    _, done = await api.call("GET", "/v1/" + job["name"])
    created = datetime.datetime.fromisoformat(done["createTime"].replace("Z", "+00:00"))
    dataset = "prediction_model_" + created.strftime("%Y_%m_%dT%H_%M_%S_") + f"{created.microsecond // 1000:03d}Z"
    table = "predictions_" + created.strftime("%Y_%m_%dT%H_%M_%S_%fZ")
    assert done["state"] == "JOB_STATE_SUCCEEDED", done
    assert done["outputInfo"] == {"bigqueryOutputDataset": f"bq://demo-project.{dataset}", "bigqueryOutputTable": table}
    assert len(read_table(bigquery, f"bq://demo-project.{dataset}.{table}")) == 3
