"""Every answer of the Vertex emulator, held to Google's discovery document for aiplatform v1.

The scenarios below drive every method and every JobState over raw HTTP with the emulator recording
each call (`recordExchanges`); then each recorded answer is validated against the method's response
schema (or the error envelope), and each accepted create body as a request. Zero problems is the bar.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from discovery import JOB, Contract, check_exchange
from vertex_http import PARENT, Api, gcs_body

from conftest import requests_rows, write_jsonl


async def test_every_answer_keeps_the_discovery_contract(vertex: Any, bucket: Any, bigquery: Any) -> None:
    url, engine = vertex
    engine.apply_config({"recordExchanges": 100_000, "cancellingSeconds": 0.3})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(5))
    prefix = f"gs://{bucket.name}/out/"
    async with aiohttp.ClientSession() as session:
        api = Api(session, url)
        # SUCCEEDED, with every read method on the way
        done = await api.create(gcs_body(src, prefix))
        await api.call("GET", PARENT + "/batchPredictionJobs", filter='labels.bij-uid="u-1"', pageSize=1)
        await api.state(done, "JOB_STATE_SUCCEEDED")
        await api.call("GET", PARENT + "/batchPredictionJobs", readMask="name,state,completionStats.successfulCount")
        await api.call("GET", "/v1/batchPredictionJobs", parent="projects/demo-project/locations/us-central1")
        await api.call("GET", "/v1/batchPredictionJobs/" + done["name"].rsplit("/", 1)[1])
        beta = PARENT.replace("/v1/", "/v1beta1/") + "/batchPredictionJobs"
        status, in_beta = await api.call("POST", beta, gcs_body(src, prefix, "beta"))
        assert status == 200, in_beta
        await api.call("GET", "/v1beta1/" + in_beta["name"])
        await api.call("GET", beta, pageSize=2)
        await api.call("POST", beta, {**gcs_body(src, prefix), "modelMonitoringConfig": {}})  # v1beta1's, refused
        # BigQuery in, a new dataset out (bq://project)
        table = "demo-project." + (await _table(bigquery))
        bq = await api.create(
            {
                **gcs_body(src, prefix, "bq"),
                "inputConfig": {"instancesFormat": "bigquery", "bigquerySource": {"inputUri": f"bq://{table}"}},
                "outputConfig": {
                    "predictionsFormat": "bigquery",
                    "bigqueryDestination": {"outputUri": "bq://demo-project"},
                },
            }
        )
        await api.state(bq, "JOB_STATE_SUCCEEDED", within=60)
        # CANCELLING -> CANCELLED; PAUSED, UPDATING; QUEUED; EXPIRED; FAILED; PARTIALLY_SUCCEEDED
        await api.control("PUT", "config", {"maxRunningJobsPerProject": 1})
        held = await api.create(gcs_body(src, prefix, "held"))
        queued = await api.create(gcs_body(src, prefix, "queued"))
        assert queued["state"] == "JOB_STATE_QUEUED"
        await api.control("POST", f"jobs/{held['name'].rsplit('/', 1)[1]}:stall")
        await api.state(held, "JOB_STATE_RUNNING")
        job_id = held["name"].rsplit("/", 1)[1]
        await api.control("POST", f"jobs/{job_id}:pause")
        await api.state(held, "JOB_STATE_PAUSED")
        await api.control("POST", f"jobs/{job_id}:unpause")
        await api.control("POST", f"jobs/{job_id}:update", {"seconds": 0.5})
        await api.state(held, "JOB_STATE_UPDATING")
        await api.state(held, "JOB_STATE_RUNNING")
        await api.call("POST", "/v1/" + held["name"] + ":cancel", {})
        await api.state(held, "JOB_STATE_CANCELLING")
        await api.state(held, "JOB_STATE_CANCELLED")
        await api.control(
            "PUT", "config", {"maxRunningJobsPerProject": 0, "queueSeconds": 60, "queueLimitSeconds": 0.2}
        )
        await api.state(await api.create(gcs_body(src, prefix, "expires")), "JOB_STATE_EXPIRED")
        await api.control("PUT", "config", {"queueSeconds": 0.05, "queueLimitSeconds": 3600})
        await api.state(await api.create(gcs_body(src, "gs://no-such-bucket-here/out/", "fails")), "JOB_STATE_FAILED")
        await api.control(
            "POST",
            "faults",
            {"jobs": [{"match": {"displayName": "partial"}, "outcome": "PARTIALLY_SUCCEEDED", "afterFraction": 0.5}]},
        )
        await api.state(await api.create(gcs_body(src, prefix, "partial")), "JOB_STATE_PARTIALLY_SUCCEEDED")
        # delete and its Operation
        status, operation = await api.call("DELETE", "/v1/" + done["name"])
        assert status == 200, operation
        status, again = await api.call("GET", "/v1/" + operation["name"])
        assert status == 200 and again == operation
        # refusals
        await api.call("POST", PARENT + "/batchPredictionJobs", {**gcs_body(src, prefix), "colour": "red"})
        await api.call("POST", PARENT + "/batchPredictionJobs", {**gcs_body(src, prefix), "displayName": 123})
        await api.call("GET", PARENT + "/batchPredictionJobs", pageSize=-1)
        await api.call("GET", PARENT + "/batchPredictionJobs", filter='createTime>"2026-01-01T00:00:00Z"')
        await api.call("PATCH", "/v1/" + bq["name"], {"displayName": "x"})
        await api.call("GET", "/v1/projects/demo-project/locations/mars-north9/batchPredictionJobs")
        await api.call("GET", PARENT + "/batchPredictionJobs/123")
        await api.call("POST", "/v1/" + done["name"] + ":cancel", {})
        async with session.get(url + PARENT + "/batchPredictionJobs") as unauthenticated:
            assert unauthenticated.status == 401
        exchanges = (await api.control("GET", "exchanges"))["exchanges"]

    contract = Contract("v1")
    states = {
        job["state"]
        for exchange in exchanges
        if exchange["status"] == 200 and exchange["method"] in ("create", "get", "list")
        for job in [exchange["response"], *exchange["response"].get("batchPredictionJobs", [])]
        if "state" in job
    }
    assert states >= set(contract.schemas[JOB]["properties"]["state"]["enum"]) - {"JOB_STATE_UNSPECIFIED"}
    assert {exchange["method"] for exchange in exchanges} == {
        "create",
        "get",
        "list",
        "cancel",
        "delete",
        "get_operation",
        "unsupported",  # the PATCH
    }
    assert {exchange["status"] for exchange in exchanges} >= {200, 400, 401, 404}
    assert len(exchanges) > 50
    problems = [problem for exchange in exchanges for problem in check_exchange(exchange)]
    assert problems == [], "\n".join(problems[:40])


async def _table(bigquery: Any) -> str:
    import uuid

    from conftest import make_dataset, make_table

    dataset = make_dataset(bigquery, f"demo-project.contract_{uuid.uuid4().hex[:10]}", "us-central1")
    make_table(bigquery, f"{dataset}.requests", requests_rows(3))
    return f"{dataset.split('.', 1)[1]}.requests"


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_the_emulators_message_table_is_the_discovery_documents(version: str) -> None:
    """Every field the emulator's request parser knows exists in the discovery document with the same
    JSON type and output-only flag, and every field of those messages is known to it (a documented
    field is never refused as unknown)."""
    from vertex_batch_emulator.protojson import messages

    contract = Contract(version)
    prefix = f"GoogleCloudAiplatform{version.capitalize()}"
    ours_to_theirs = {
        "BatchPredictionJob": "BatchPredictionJob",
        "BatchPredictionJob.InputConfig": "BatchPredictionJobInputConfig",
        "BatchPredictionJob.OutputConfig": "BatchPredictionJobOutputConfig",
        "BatchPredictionJob.OutputInfo": "BatchPredictionJobOutputInfo",
        "GcsSource": "GcsSource",
        "BigQuerySource": "BigQuerySource",
        "VertexMultimodalDatasetSource": "VertexMultimodalDatasetSource",
        "GcsDestination": "GcsDestination",
        "BigQueryDestination": "BigQueryDestination",
        "VertexMultimodalDatasetDestination": "VertexMultimodalDatasetDestination",
        "CancelBatchPredictionJobRequest": "CancelBatchPredictionJobRequest",
    }
    names = {ours: prefix + theirs for ours, theirs in ours_to_theirs.items()}
    table = messages(version)
    assert set(names) == set(table)
    json_type = {"string": "string", "enum": "string", "bool": "boolean", "map": "object"}
    for ours, theirs in names.items():
        documented = contract.schemas[theirs].get("properties", {})
        assert set(table[ours]) == set(documented), ours
        for name, field in table[ours].items():
            spec = documented[name]
            assert bool(spec.get("readOnly")) == field.output_only, f"{ours}.{name}"
            if field.repeated:
                assert spec["type"] == "array", f"{ours}.{name}"
                spec = spec["items"]
            if field.kind == "message":
                assert spec["$ref"] == names[field.message], f"{ours}.{name}"
            elif field.kind in json_type:
                assert spec.get("type") == json_type[field.kind], f"{ours}.{name}"
            if field.kind == "enum":
                assert list(field.enum) == spec["enum"], f"{ours}.{name}"
