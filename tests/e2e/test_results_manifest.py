"""The results ledger end to end: a finished job's manifest agrees row by row with what the Vertex
emulator wrote; rows the emulator drops are found by key, reported and resubmitted; resumed rows count
once; a BigQuery job gets a manifest table."""

from __future__ import annotations

from typing import Any

from test_bigquery import bq_manifest
from test_operator import has_event, phase_of
from test_vertex_bigquery import TICKET_COLUMNS, tickets

from batch_inference_operator.core.keys import row_key
from conftest import (
    bij_path,
    call,
    control,
    job_manifest,
    make_table,
    read_jsonl,
    read_table,
    requests_rows,
    write_jsonl,
)

FAST = {"backoffSeconds": 0, "maxAttempts": 3}


def keyed(count: int) -> list[dict[str, Any]]:
    return [{"key": f"k{i:03d}", **row} for i, row in enumerate(requests_rows(count))]


def by_line(gcs: Any, uri: str) -> dict[int, dict[str, Any]]:
    """An output file's rows by their 1-based line."""
    return dict(enumerate(read_jsonl(gcs, uri), 1))


def agrees(manifest: list[dict[str, Any]], inputs: list[dict[str, Any]], gcs: Any, key_field: str) -> None:
    """Each input row once, in input order, and each manifest row pointing at the output row of its key,
    with that row's outcome."""
    assert [m["key"] for m in manifest] == [row_key(row, key_field) for row in inputs]
    files: dict[str, dict[int, dict[str, Any]]] = {}
    for entry in manifest:
        if entry["outcome"] == "missing":
            assert "file" not in entry
            continue
        rows = files.setdefault(entry["file"], by_line(gcs, entry["file"]))
        row = rows[entry["line"]]
        assert row_key(row, key_field) == entry["key"]
        if entry["outcome"] == "succeeded":
            assert row["response"] and not row["status"]
        else:
            assert row["status"] == entry["error"]


async def test_a_finished_job_writes_a_manifest_that_agrees_with_the_output(stack: Any, gcs: Any, bucket: Any) -> None:
    rows = requests_rows(40)  # no `key` field: content keys over the re-serialized requests
    rows[5]["request"]["contents"][0]["parts"][0]["text"] = "permanently bad"
    rows[9]["request"]["system_instruction"] = {"parts": [{"text": "be brief"}]}
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"code": 400, "match": "permanently bad"}]})
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(stack.kube, "POST", bij_path(), job_manifest("ledger", src, f"gs://{bucket.name}/out/", resume=FAST))
    done = (await phase_of(stack, "ledger", within=60))["status"]
    assert done["phase"] == "PartiallySucceeded", done["message"]
    assert done["manifest"] == f"gs://{bucket.name}/out/results-manifest.jsonl"
    assert done["rows"] == {"total": 40, "succeeded": 39, "failed": 1, "missing": 0}
    output = done["outputLocation"] + "/predictions.jsonl"
    emitted = read_jsonl(gcs, output)
    assert [r["id"] for r in emitted] != [r["id"] for r in rows], "the emulator wrote another order"
    manifest = read_jsonl(gcs, done["manifest"])
    assert {m["file"] for m in manifest} == {output}
    agrees(manifest, rows, gcs, "key")
    failed = next(m for m in manifest if m["outcome"] == "failed")
    assert failed["inputLine"] == 6 and "Bad Request" in failed["error"]
    assert len({m["key"] for m in manifest}) == 40 and all(m["key"].startswith("sha256:") for m in manifest)
    blob = gcs.client().bucket(bucket.name).get_blob("out/results-manifest.jsonl")
    assert blob.metadata and blob.metadata["bij-ledger-source"], "tagged with the outputs it was made from"


async def test_rows_carried_through_a_resume_count_once(stack: Any, gcs: Any, bucket: Any) -> None:
    rows = keyed(30)
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.5}]})
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(stack.kube, "POST", bij_path(), job_manifest("carried", src, f"gs://{bucket.name}/out/", resume=FAST))
    done = (await phase_of(stack, "carried", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    assert len(done["attempts"]) == 2 and done["rows"] == {"total": 30, "succeeded": 30, "failed": 0, "missing": 0}
    manifest = read_jsonl(gcs, done["manifest"])
    assert {m["file"] for m in manifest} == {done["outputLocation"] + "/predictions.jsonl"}, "the last output only"
    agrees(manifest, rows, gcs, "key")


async def test_dropped_rows_are_reported_missing_and_resubmitted(stack: Any, gcs: Any, bucket: Any) -> None:
    rows = keyed(20)
    for index in (3, 11):
        rows[index]["request"]["contents"][0]["parts"][0]["text"] = f"lost once {index}"
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"drop": True, "match": "lost once", "times": 1}]})
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(stack.kube, "POST", bij_path(), job_manifest("dropped", src, f"gs://{bucket.name}/out/", resume=FAST))
    done = (await phase_of(stack, "dropped", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    first, second = done["attempts"]
    assert first["state"] == "JOB_STATE_SUCCEEDED" and first["missing"] == 2
    missing_file = f"gs://{bucket.name}/out/ledger/missing-after-attempt-1.jsonl"
    assert first["missingInput"] == missing_file
    assert [r["key"] for r in read_jsonl(gcs, missing_file)] == ["k003", "k011"], "the input rows, as read"
    assert second["input"] == [first["outputLocation"] + "/predictions.jsonl", missing_file]
    assert second["missing"] == 0 and "missingInput" not in second
    assert done["rows"] == {"total": 20, "succeeded": 20, "failed": 0, "missing": 0}
    agrees(read_jsonl(gcs, done["manifest"]), rows, gcs, "key")
    await has_event(stack, "dropped", ("Warning", "RowsMissing"))


async def test_rows_still_missing_after_the_last_attempt_end_partially_succeeded(
    stack: Any, gcs: Any, bucket: Any
) -> None:
    rows = keyed(10)
    rows[4]["request"]["contents"][0]["parts"][0]["text"] = "always lost"
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"drop": True, "match": "always lost"}]})
    src = write_jsonl(bucket, "in.jsonl", rows)
    resume = {"backoffSeconds": 0, "maxAttempts": 2}
    await call(stack.kube, "POST", bij_path(), job_manifest("lost", src, f"gs://{bucket.name}/out/", resume=resume))
    done = (await phase_of(stack, "lost", within=60))["status"]
    assert done["phase"] == "PartiallySucceeded", done["message"]
    assert [a["missing"] for a in done["attempts"]] == [1, 1], "resubmitted once, then reported"
    assert done["rows"] == {"total": 10, "succeeded": 9, "failed": 0, "missing": 1}
    manifest = read_jsonl(gcs, done["manifest"])
    assert [m["key"] for m in manifest if m["outcome"] == "missing"] == ["k004"]
    agrees(manifest, rows, gcs, "key")


async def test_a_bigquery_job_gets_a_manifest_table(stack: Any, bigquery: Any, dataset: str) -> None:
    source = make_table(bigquery, f"{dataset}.tickets", tickets(12), TICKET_COLUMNS)
    spec = bq_manifest(
        "bq-ledger", {"bigquery": {"table": source}, "keyField": "id"}, {"bigquery": {"dataset": f"bq://{dataset}"}}
    )
    await call(stack.kube, "POST", bij_path(), spec)
    done = (await phase_of(stack, "bq-ledger", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    output = done["outputLocation"]
    assert done["manifest"] == f"bq://{dataset}.results_manifest_{output.rsplit('.', 1)[-1]}"
    assert done["rows"] == {"total": 12, "succeeded": 12, "failed": 0, "missing": 0}
    manifest = read_table(bigquery, done["manifest"])
    assert sorted(m["key"] for m in manifest) == sorted(f"r{i}" for i in range(12))
    out = read_table(bigquery, output)
    for entry in manifest:
        assert entry["outcome"] == "succeeded" and entry["table"] == output and entry["shard"] == 1
        assert out[entry["row"] - 1]["id"] == entry["key"], "the row it names is the row of its key"
    # docs/results.md's one query: input, outcome and answer side by side, joined on the key column.
    query = (
        "SELECT i.id AS id, i.priority AS priority, m.outcome AS outcome, o.response AS response, m.error AS error "
        f"FROM `{done['manifest'].removeprefix('bq://')}` AS m "
        f"JOIN `{source.removeprefix('bq://')}` AS i ON CAST(i.id AS STRING) = m.key "
        f"LEFT JOIN `{output.removeprefix('bq://')}` AS o ON CAST(o.id AS STRING) = m.key"
    )
    joined = {row["id"]: dict(row) for row in bigquery.client().query(query).result()}
    assert sorted(joined) == sorted(f"r{i}" for i in range(12))
    assert all(r["outcome"] == "succeeded" and r["response"]["candidates"] for r in joined.values())
    assert joined["r4"]["priority"] == 1


async def test_a_bigquery_job_with_a_lost_row_reports_it_missing(stack: Any, bigquery: Any, dataset: str) -> None:
    rows = tickets(8)
    rows[6]["request"]["contents"][0]["parts"][0]["text"] = "lost in the table"
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"drop": True, "match": "lost in the table"}]})
    source = make_table(bigquery, f"{dataset}.tickets", rows, TICKET_COLUMNS)
    spec = bq_manifest(
        "bq-lost", {"bigquery": {"table": source}, "keyField": "id"}, {"bigquery": {"dataset": f"bq://{dataset}"}}
    )
    await call(stack.kube, "POST", bij_path(), spec)
    done = (await phase_of(stack, "bq-lost", within=60))["status"]
    assert done["phase"] == "PartiallySucceeded", done["message"]
    assert done["rows"] == {"total": 8, "succeeded": 7, "failed": 0, "missing": 1}
    manifest = read_table(bigquery, done["manifest"])
    assert [m["key"] for m in manifest if m["outcome"] == "missing"] == ["r6"]
