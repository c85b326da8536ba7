"""BigQuery input and output end to end: the operator, the Vertex emulator and the BigQuery stand-in."""

from __future__ import annotations

import uuid
from typing import Any

from test_operator import has_event, jobs_of, phase_of, stored
from test_vertex_bigquery import TICKET_COLUMNS, tickets

from conftest import (
    USAGE_KEYS,
    bij_path,
    call,
    control,
    eventually,
    job_manifest,
    make_dataset,
    make_table,
    read_table,
    usage_totals,
    write_jsonl,
)

FAST = {"backoffSeconds": 0, "maxAttempts": 3}


def bq_manifest(name: str, input_spec: dict[str, Any], output_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    manifest = job_manifest(name, "gs://unused/x.jsonl", "gs://unused/", **spec)
    manifest["spec"]["input"] = input_spec
    manifest["spec"]["output"] = output_spec
    return manifest


async def test_bigquery_to_bigquery_job_succeeds_with_every_row_and_usage(
    stack: Any, bigquery: Any, dataset: str
) -> None:
    source = make_table(bigquery, f"{dataset}.tickets", tickets(30), TICKET_COLUMNS)
    manifest = bq_manifest("bq-to-bq", {"bigquery": {"table": source}}, {"bigquery": {"dataset": f"bq://{dataset}"}})
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "bq-to-bq", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    assert done["outputLocation"].startswith(f"bq://{dataset}.predictions_")
    assert done["preflight"]["requests"] == 30 and "sharedPrefixRequests" not in done["preflight"]

    rows = read_table(bigquery, done["outputLocation"])
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(30)), "every row exactly once"
    assert {r["id"]: (r["priority"], r["meta"]) for r in rows}["r5"] == (2, {"queue": "q1"}), "passthrough columns"
    usage = done["usage"]
    assert {key: usage[key] for key in USAGE_KEYS} == usage_totals(rows), "usage equals the emulator's totals"
    assert usage["requests"] == 30 and usage["succeeded"] == 30 and usage["estimatedCostUSD"]
    assert done["attempts"][0]["rows"]["succeeded"] == 30
    await has_event(stack, "bq-to-bq", ("Normal", "PreflightPassed"))
    await has_event(stack, "bq-to-bq", ("Normal", "Succeeded"))


async def test_gcs_to_a_named_bigquery_table(stack: Any, bigquery: Any, dataset: str, bucket: Any) -> None:
    rows = [{**row, "rank": i} for i, row in enumerate(tickets(20))]
    for row in rows:
        del row["opened"]  # a JSONL file has no dates: a string would stay a string
    src = write_jsonl(bucket, "in.jsonl", rows)
    named = f"bq://{dataset}.answers"
    manifest = bq_manifest("gcs-to-bq", {"gcs": {"uris": [src]}}, {"bigquery": {"table": named}})
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "gcs-to-bq", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    assert done["outputLocation"] == named
    out = {r["id"]: r for r in read_table(bigquery, named)}
    assert sorted(out) == sorted(f"r{i}" for i in range(20))
    assert (out["r4"]["rank"], out["r4"]["priority"], out["r4"]["meta"]) == (4, 1, {"queue": "q0"})
    assert {key: done["usage"][key] for key in USAGE_KEYS} == usage_totals(list(out.values()))


async def test_a_resumed_bigquery_job_ends_with_every_row_exactly_once(stack: Any, bigquery: Any, dataset: str) -> None:
    source = make_table(bigquery, f"{dataset}.tickets", tickets(40), TICKET_COLUMNS)
    named = f"bq://{dataset}.answers"
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.5}]})
    manifest = bq_manifest("bq-resumed", {"bigquery": {"table": source}}, {"bigquery": {"table": named}}, resume=FAST)
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "bq-resumed", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    first, second = done["attempts"]
    assert first["outputLocation"] == named and second["input"] == [named], "resumed from the previous output table"
    assert first["rows"] == {
        "succeeded": 20,
        "failedTransient": 0,
        "failedPermanent": 0,
        "incomplete": 20,
        "unreadable": 0,
    }
    assert second["outputLocation"].startswith(f"bq://{dataset}.predictions_"), "never appended to its own input"
    assert done["outputLocation"] == second["outputLocation"]
    rows = read_table(bigquery, done["outputLocation"])
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(40)), "every row exactly once"
    assert all(r["response"] and r["status"] == "" for r in rows)
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), stored(stack, "bq-resumed")["metadata"]["uid"])
    assert [j["rows"]["processed"] for j in jobs] == [20, 20], "the resumed job ran only the unfinished rows"
    assert {key: done["usage"][key] for key in USAGE_KEYS} == usage_totals(rows)
    assert done["usage"]["requests"] == 40


async def test_bad_bigquery_inputs_fail_before_submit_with_a_clear_message(
    stack: Any, bigquery: Any, dataset: str
) -> None:
    elsewhere = make_dataset(bigquery, f"demo-project.eu_{uuid.uuid4().hex[:8]}", "europe-west4")
    request = tickets(1)[0]["request"]
    cases = {
        "other-region": (
            make_table(bigquery, f"{elsewhere}.tickets", tickets(2), TICKET_COLUMNS),
            "is in europe-west4, but the job runs in us-central1",
        ),
        "no-request": (
            make_table(
                bigquery, f"{dataset}.prompts", [{"id": "a", "prompt": request}], {"id": "STRING", "prompt": "JSON"}
            ),
            "has no `request` column",
        ),
        "reserved": (
            make_table(
                bigquery,
                f"{dataset}.with_status",
                [{"id": "a", "request": request, "status": "open"}],
                {"id": "STRING", "request": "JSON", "status": "STRING"},
            ),
            "column `status` has a name Vertex reserves for its output",
        ),
    }
    for name, (table, _) in cases.items():
        manifest = bq_manifest(name, {"bigquery": {"table": table}}, {"bigquery": {"dataset": f"bq://{dataset}"}})
        await call(stack.kube, "POST", bij_path(), manifest)
    for name, (table, expected) in cases.items():
        done = (await phase_of(stack, name, within=60))["status"]
        assert done["phase"] == "Failed" and expected in done["message"] and table in done["message"], done["message"]
        assert next(c for c in done["conditions"] if c["type"] == "Failed")["reason"] == "InvalidInput"
        await has_event(stack, name, ("Warning", "InvalidInput"))
    assert stack.engine.stats["create", 200] == 0, "no Vertex job was created"


async def test_an_output_dataset_that_does_not_exist_is_named(stack: Any, bigquery: Any, dataset: str) -> None:
    source = make_table(bigquery, f"{dataset}.tickets", tickets(2), TICKET_COLUMNS)
    manifest = bq_manifest(
        "no-dataset", {"bigquery": {"table": source}}, {"bigquery": {"dataset": "bq://demo-project.nowhere"}}
    )
    await call(stack.kube, "POST", bij_path(), manifest)
    done = (await phase_of(stack, "no-dataset", within=60))["status"]
    assert done["phase"] == "Failed" and "bq://demo-project.nowhere does not exist" in done["message"]
    assert next(c for c in done["conditions"] if c["type"] == "Failed")["reason"] == "OutputNotFound"
    await has_event(stack, "no-dataset", ("Warning", "OutputNotFound"))


async def test_a_namespace_policy_refuses_other_teams_datasets(stack: Any, bigquery: Any, dataset: str) -> None:
    theirs = make_dataset(bigquery, f"demo-project.theirs_{uuid.uuid4().hex[:8]}", "us-central1")
    namespace = {
        "metadata": {
            "name": "team-bq",
            "annotations": {"batchinference.dev/allowed-bigquery-datasets": f"bq://{dataset}"},
        }
    }
    await call(stack.kube, "POST", "/api/v1/namespaces", namespace)
    source = make_table(bigquery, f"{dataset}.tickets", tickets(3), TICKET_COLUMNS)
    for name, output in (("own", f"bq://{dataset}.answers"), ("theirs", f"bq://{theirs}.stolen")):
        manifest = bq_manifest(name, {"bigquery": {"table": source}}, {"bigquery": {"table": output}})
        manifest["metadata"]["namespace"] = "team-bq"
        await call(stack.kube, "POST", bij_path("team-bq"), manifest)

    def phase(name: str) -> str | None:
        return (stored(stack, name, "team-bq") or {}).get("status", {}).get("phase")

    await eventually(lambda: phase("own") == "Succeeded" and phase("theirs") == "Failed", timeout=60)
    refused = stored(stack, "theirs", "team-bq")["status"]
    assert f"bq://{theirs}.stolen is outside the namespace's allowed BigQuery datasets" in refused["message"]
    assert stack.engine.stats["create", 200] == 1, "only the allowed job reached Vertex"
