"""The ledger: row keys, and the join of input rows to output rows (succeeded, failed, missing; carried
rows once; duplicates once), and the decisions around it (missing rows resubmitted, manifest before the
final phase)."""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import sys
from typing import Any

from batch_inference_operator import api
from batch_inference_operator.api import Attempt, BatchInferenceJobStatus, RowCounts, parse_spec
from batch_inference_operator.core.actions import ScanOutput, WriteManifest
from batch_inference_operator.core.keys import content_key, row_key
from batch_inference_operator.core.ledger import (
    NOT_RUN,
    Shard,
    Totals,
    index_output,
    input_rows,
    join,
    manifest_lines,
)
from batch_inference_operator.core.manifest import manifest_of, record_manifest, record_missing
from batch_inference_operator.core.resume import settle
from conftest import REPO

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
OUT = "gs://bkt/out/prediction-model-1/predictions.jsonl"


def request(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def lines(rows: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(row).encode() for row in rows]


def ok(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "status": "", "response": {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}}


def failed(row: dict[str, Any], status: str = "Bad Request: role") -> dict[str, Any]:
    return {**row, "status": status, "response": {}}


def manifest(inputs: list[dict[str, Any]], outputs: list[bytes], key_field: str = "key") -> tuple[list, Totals]:
    totals = Totals()
    shard = Shard(1, ("gs://bkt/in.jsonl",), OUT)
    rows = input_rows("gs://bkt/in.jsonl", lines(inputs), key_field)
    entries = list(join(shard, rows, index_output(outputs, key_field), totals))
    return [json.loads(line) for line in manifest_lines(entries)], totals


# ------------------------------------------------------------------ keys


def test_a_key_field_is_the_key_and_a_number_is_its_decimal_text() -> None:
    assert row_key({"key": "t-1", "request": request("a")}, "key") == "t-1"
    assert row_key({"id": 7, "request": request("a")}, "id") == "7"


def test_the_content_key_survives_vertex_re_serializing_the_request() -> None:
    sent = {"system_instruction": {"parts": [{"text": "be brief"}]}, "contents": [{"parts": [{"text": "hi"}]}]}
    echoed = {
        "contents": [{"parts": [{"text": "hi", "inlineData": None, "fileData": None}]}],
        "systemInstruction": {"parts": [{"text": "be brief", "fileData": None}]},
    }
    assert content_key(sent) == content_key(echoed)
    assert content_key(sent).startswith("sha256:") and len(content_key(sent)) == 7 + 64
    assert content_key(sent) != content_key({**sent, "contents": [{"parts": [{"text": "ho"}]}]})
    assert row_key({"request": sent}, "key") == content_key(echoed), "no key field: the content key"


# ------------------------------------------------------------------ the join


def test_each_input_row_is_joined_to_its_output_row_whatever_the_order() -> None:
    inputs = [{"key": f"k{i}", "request": request(f"q{i}")} for i in range(4)]
    outputs = lines([failed(inputs[2]), ok(inputs[3]), ok(inputs[0])])  # shuffled, k1 lost
    rows, totals = manifest(inputs, outputs)
    assert [r["key"] for r in rows] == ["k0", "k1", "k2", "k3"], "in input order"
    by_key = {r["key"]: r for r in rows}
    assert by_key["k0"] == {
        "key": "k0",
        "outcome": "succeeded",
        "shard": 1,
        "file": OUT,
        "line": 3,
        "input": "gs://bkt/in.jsonl",
        "inputLine": 1,
    }
    assert by_key["k1"]["outcome"] == "missing" and "file" not in by_key["k1"]
    assert by_key["k2"]["outcome"] == "failed" and by_key["k2"]["error"] == "Bad Request: role"
    assert by_key["k2"]["line"] == 1
    assert (totals.total, totals.succeeded, totals.failed, totals.missing) == (4, 2, 1, 1)


def test_rows_carried_through_resumes_count_once() -> None:
    """The last attempt's output holds the carried rows beside the re-run ones: each input row once."""
    inputs = [{"key": f"k{i}", "request": request(f"q{i}")} for i in range(3)]
    carried = [ok(inputs[0]), ok(inputs[1])]  # succeeded in attempt 1, copied through by attempt 2
    rerun = [ok(inputs[2])]
    rows, totals = manifest(inputs, lines(rerun + carried))
    assert (totals.total, totals.succeeded, totals.failed, totals.missing) == (3, 3, 0, 0)
    assert totals.duplicates == 0 and sorted(r["line"] for r in rows) == [1, 2, 3]


def test_a_duplicate_output_row_counts_once_and_a_success_wins() -> None:
    inputs = [{"key": "k0", "request": request("q0")}, {"key": "k1", "request": request("q1")}]
    outputs = lines([failed(inputs[0]), ok(inputs[0]), ok(inputs[1]), ok(inputs[1])])
    rows, totals = manifest(inputs, outputs)
    assert [(r["key"], r["outcome"], r["line"]) for r in rows] == [("k0", "succeeded", 2), ("k1", "succeeded", 3)]
    assert (totals.total, totals.succeeded, totals.duplicates) == (2, 2, 2)


def test_unrun_unreadable_and_foreign_rows() -> None:
    inputs = [{"request": request("q0")}, {"request": request("q1")}]  # content keys
    never_ran = {"request": request("q1")}
    outputs = [*lines([never_ran, ok({"request": request("not ours")})]), b"{not json", b""]
    rows, totals = manifest(inputs, outputs)
    assert rows[0]["outcome"] == "missing"
    assert rows[1]["outcome"] == "failed" and rows[1]["error"] == NOT_RUN
    assert rows[1]["key"] == content_key(request("q1"))
    assert (totals.unmatched, totals.unreadable) == (1, 1)


def test_shards_are_numbered_and_a_shard_without_output_is_all_missing() -> None:
    totals = Totals()
    rows = input_rows("gs://bkt/shards/input-00002.jsonl", lines([{"key": "a", "request": request("a")}]), "key")
    got = list(join(Shard(2, ("gs://bkt/shards/input-00002.jsonl",), None), rows, index_output([], "key"), totals))
    assert got[0].row["shard"] == 2 and got[0].row["outcome"] == "missing" and totals.missing == 1


def test_a_table_output_names_the_table_and_row() -> None:
    totals = Totals()
    rows = input_rows("gs://bkt/in.jsonl", lines([{"key": "a", "request": request("a")}]), "key")
    index = index_output(lines([ok({"key": "a", "request": request("a")})]), "key")
    (entry,) = join(Shard(1, ("gs://bkt/in.jsonl",), "bq://p.d.out"), rows, index, totals)
    assert entry.row["table"] == "bq://p.d.out" and entry.row["row"] == 1 and "file" not in entry.row


# ------------------------------------------------------------------ decisions


def spec() -> Any:
    return parse_spec(
        {
            "model": "gemini-2.5-flash",
            "input": {"gcs": {"uris": ["gs://bkt/in.jsonl"]}},
            "output": {"gcs": {"uriPrefix": "gs://bkt/out/"}},
            "resume": {"maxAttempts": 2, "backoffSeconds": 0},
        }
    )


def ended(number: int, missing: int | None = None) -> BatchInferenceJobStatus:
    attempt = Attempt(
        attempt=number,
        job_name=f"j{number}",
        state="JOB_STATE_SUCCEEDED",
        start_time=NOW,
        end_time=NOW,
        output_location=f"gs://bkt/out/prediction-model-{number}",
        rows=RowCounts(succeeded=9),
    )
    status = BatchInferenceJobStatus(project="p", location="us-central1", attempts=[attempt], attempt=number)
    if missing is not None:
        status = record_missing(status, number, missing, f"gs://bkt/out/ledger/missing-after-attempt-{number}.jsonl")
    return status


def test_a_finished_attempt_is_scanned_with_a_missing_rows_file_under_the_output() -> None:
    from batch_inference_operator.core.manifest import scan_of

    action = scan_of(spec(), ended(1).attempts[0])
    assert action == ScanOutput(
        1,
        "gs://bkt/out/prediction-model-1",
        ("gs://bkt/in.jsonl",),
        key_field="key",
        missing_uri="gs://bkt/out/ledger/missing-after-attempt-1.jsonl",
    )


def test_missing_rows_are_resubmitted_beside_the_output_while_attempts_remain() -> None:
    status = ended(1, missing=1)
    decision = settle(spec(), status, status.attempts[-1], NOW, 1)
    assert decision.status.phase == "Resuming"
    assert decision.status.attempts[-1].input == [
        "gs://bkt/out/prediction-model-1/predictions.jsonl",
        "gs://bkt/out/ledger/missing-after-attempt-1.jsonl",
    ]


def test_without_missing_rows_the_manifest_is_written_before_the_final_phase() -> None:
    status = ended(1, missing=0)
    decision = settle(spec(), status, status.attempts[-1], NOW, 1)
    assert decision.status.phase is None, "not final until the manifest is written"
    (write,) = decision.actions
    assert isinstance(write, WriteManifest) and write.uri == "gs://bkt/out/results-manifest.jsonl"
    assert write.shards == (Shard(1, ("gs://bkt/in.jsonl",), "gs://bkt/out/prediction-model-1/predictions.jsonl"),)
    written = record_manifest(decision.status, write.uri, Totals(total=9, succeeded=9))
    assert manifest_of(spec(), written) is None
    final = settle(spec(), written, written.attempts[-1], NOW, 1)
    assert final.status.phase == "Succeeded" and final.status.rows is not None and final.status.rows.total == 9


def test_missing_rows_left_after_the_last_attempt_end_partially_succeeded() -> None:
    status = ended(1, missing=2)
    status.attempts.append(status.attempts[0].model_copy(update={"attempt": 2}))
    status = record_missing(status, 2, 2, "gs://bkt/out/ledger/missing-after-attempt-2.jsonl")
    status = record_manifest(status, "gs://bkt/out/results-manifest.jsonl", Totals(total=11, succeeded=9, missing=2))
    final = settle(spec(), status, status.attempts[-1], NOW, 1)
    assert final.status.phase == "PartiallySucceeded" and "2 requests did not succeed" in (final.status.message or "")


def test_the_example_joins_a_manifest_to_its_output_in_one_pass(tmp_path: pathlib.Path) -> None:
    """examples/join_results.py, on a manifest the ledger made: answers by key, in input order."""
    inputs = [{"id": f"t{i}", "request": request(f"q{i}")} for i in range(3)]
    answered = {**ok(inputs[1]), "response": {"candidates": [{"content": {"parts": [{"text": "yes"}]}}]}}
    output = [failed(inputs[2]), answered]
    directory = tmp_path / "prediction-model-1"
    directory.mkdir()
    (directory / "predictions.jsonl").write_bytes(b"\n".join(lines(output)) + b"\n")
    uri = "gs://bkt/out/prediction-model-1/predictions.jsonl"
    shard = Shard(1, ("gs://bkt/in.jsonl",), uri)
    entries = join(
        shard, input_rows("gs://bkt/in.jsonl", lines(inputs), "id"), index_output(lines(output), "id"), Totals()
    )
    (tmp_path / "results-manifest.jsonl").write_bytes(b"".join(manifest_lines(entries)))
    script = REPO / "examples/join_results.py"
    result = subprocess.run(
        [sys.executable, str(script), "results-manifest.jsonl", "prediction-model-1/predictions.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"key": "t0", "outcome": "missing"},
        {"key": "t1", "outcome": "succeeded", "answer": "yes"},
        {"key": "t2", "outcome": "failed", "error": "Bad Request: role"},
    ]


def test_a_sharded_parent_manifest_covers_every_shard_in_order() -> None:
    from batch_inference_operator.core.manifest import manifest_for_shards

    shards = [
        Shard(2, ("gs://bkt/out/shards/input-00002.jsonl",), "gs://bkt/out/shards/output-00002/p/predictions.jsonl"),
        Shard(1, ("gs://bkt/out/shards/input-00001.jsonl",), None),
    ]
    write = manifest_for_shards(spec(), ended(1), shards, "big-job")
    assert write.uri == "gs://bkt/out/results-manifest.jsonl" and [s.index for s in write.shards] == [1, 2]
    totals = Totals()
    first = input_rows(write.shards[0].inputs[0], lines([{"key": "a", "request": request("a")}]), "key")
    second = input_rows(write.shards[1].inputs[0], lines([{"key": "b", "request": request("b")}]), "key")
    out = index_output(lines([ok({"key": "b", "request": request("b")})]), "key")
    rows = [e.row for e in join(write.shards[0], first, index_output([], "key"), totals)]
    rows += [e.row for e in join(write.shards[1], second, out, totals)]
    assert [(r["key"], r["shard"], r["outcome"]) for r in rows] == [("a", 1, "missing"), ("b", 2, "succeeded")]
    assert (totals.total, totals.succeeded, totals.missing) == (2, 1, 1)


def test_a_job_that_never_wrote_an_output_reports_its_rows_missing_without_a_manifest() -> None:
    status = ended(1)
    status.attempts[0].rows = None
    status.attempts[0].output_location = None
    status.attempts[0].state = "JOB_STATE_EXPIRED"
    status.preflight = api.PreflightReport(requests=7)
    once = spec().model_copy(update={"resume": api.ResumeSpec(max_attempts=1)})
    final = settle(once, status, status.attempts[-1], NOW, 1)
    assert final.actions == [] and final.status.phase == "Failed" and final.status.manifest is None
    assert final.status.rows == api.RowTotals(total=7, succeeded=0, failed=0, missing=7)


def test_rows_the_manifest_finds_missing_keep_a_succeeded_job_from_reading_as_succeeded() -> None:
    """A BigQuery output is not joined after each attempt (no file to resubmit from): the manifest's join
    is where its lost rows show, and the phase says so."""
    status = ended(1)
    status = record_manifest(status, "bq://p.d.results_manifest_x", Totals(total=10, succeeded=9, missing=1))
    final = settle(spec(), status, status.attempts[-1], NOW, 1)
    assert final.status.phase == "PartiallySucceeded" and "1 request did not succeed" in (final.status.message or "")


def test_identical_requests_without_keys_take_one_answer_each() -> None:
    same = {"request": request("same question")}
    inputs = [same, {"request": request("other")}, same, same]
    outputs = lines([ok(same), ok(inputs[1]), ok(same)])
    rows, totals = manifest(inputs, outputs)
    assert [r["outcome"] for r in rows] == ["succeeded", "succeeded", "succeeded", "missing"]
    assert sorted(r["line"] for r in rows if r["key"] == rows[0]["key"] and "line" in r) == [1, 3]
    assert (totals.total, totals.succeeded, totals.missing, totals.duplicates, totals.unmatched) == (4, 3, 1, 0, 0)
