"""Usage scanning, cost estimates and the input preflight, on lines made here."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from batch_inference_operator import api
from batch_inference_operator.core.outcomes import TRANSIENT_PATTERN, is_transient
from batch_inference_operator.core.preflight_bigquery import Column, bigquery_input_problems, region_problem
from batch_inference_operator.core.preflight_jsonl import CACHE_PREFIX_CHARS, MAX_NESTING, Preflight
from batch_inference_operator.core.pricing import DEFAULT_PRICES, Price, estimate_cost, parse_prices
from batch_inference_operator.core.usage import from_totals, scan, usage_query


def row(status: str = "", usage: dict | None = None, response: bool = True) -> bytes:
    body: dict = {"id": "x", "status": status, "request": {"contents": []}}
    if response:
        body["response"] = {} if status else {"candidates": [], "usageMetadata": usage or {}}
    return json.dumps(body).encode()


def test_scan_sums_usage_of_successful_rows_and_classifies_failures() -> None:
    lines = [
        row(
            usage={
                "promptTokenCount": 3000,
                "cachedContentTokenCount": 2048,
                "candidatesTokenCount": 10,
                "thoughtsTokenCount": 5,
                "totalTokenCount": 3015,
            }
        ),
        row(usage={"promptTokenCount": 1000, "candidatesTokenCount": 20, "totalTokenCount": 1020}),
        row('Bad Request: {"error": {"code": 400, "message": "bad role", "status": "INVALID_ARGUMENT"}}'),
        row('Too Many Requests: {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}'),
        row('Internal error occurred. Failed to get generateContentResponse: {"error": {"code": 500}}'),
        row(response=False),
        b"",
    ]
    usage, rows, _ = scan(lines)
    assert rows == api.RowCounts(succeeded=2, failed_transient=2, failed_permanent=1, incomplete=1)
    assert (usage.requests, usage.succeeded, usage.failed) == (6, 2, 3)
    assert (usage.prompt_tokens, usage.cached_tokens, usage.candidates_tokens) == (4000, 2048, 30)
    assert (usage.thoughts_tokens, usage.total_tokens) == (5, 4035)
    assert usage.cache_hit_ratio == 0.512


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        ('Service Unavailable: {"error": {"code": 503}}', True),
        ('Bad Request: {"error": {"code": 400}}', False),
        ('Something: {"error": {"code": 504, "status": "DEADLINE_EXCEEDED"}}', True),
    ],
)
def test_transient_classification(status: str, transient: bool) -> None:
    assert is_transient(status) is transient


def test_cost_uses_batch_half_price_and_cached_tenth_without_stacking() -> None:
    usage = api.Usage(
        prompt_tokens=1_000_000, cached_tokens=400_000, candidates_tokens=100_000, thoughts_tokens=100_000
    )
    # flash: input 0.30, output 2.50 per million; uncached 600k at half, cached 400k at 10 %, output 200k at half
    expected = (
        Decimal("0.6") * Decimal("0.30") * Decimal("0.5")
        + Decimal("0.4") * Decimal("0.30") * Decimal("0.1")
        + Decimal("0.2") * Decimal("2.50") * Decimal("0.5")
    )
    assert estimate_cost(usage, "gemini-2.5-flash", DEFAULT_PRICES) == str(expected.quantize(Decimal("0.0001")))
    assert estimate_cost(usage, "publishers/google/models/gemini-2.5-flash", DEFAULT_PRICES) is not None
    assert estimate_cost(usage, "projects/p/locations/l/models/123", DEFAULT_PRICES) is None


def test_price_table_from_the_environment() -> None:
    prices = parse_prices('{"my-tuned": {"input": 1, "output": 2}}')
    assert prices == {"my-tuned": Price(Decimal("1"), Decimal("2"))}
    with pytest.raises(ValueError, match="my-tuned"):
        parse_prices('{"my-tuned": {"input": 1}}')


GOOD = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def line(request: object, **extra: object) -> bytes:
    return json.dumps({**extra, "request": request}).encode()


def nested(levels: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(levels):
        node = {"inner": node}
    return node


@pytest.mark.parametrize(
    ("lines", "rule", "bad_line"),
    [
        ([line(GOOD), b"{oops"], "json", 2),
        ([line(GOOD), b'"just text"'], "request", 2),
        ([line(GOOD), json.dumps({"id": 1, "req": GOOD}).encode()], "request", 2),
        ([line(GOOD), line({**GOOD, "tools": [{"urlContext": {}}]})], "empty-object", 2),
        ([line({**GOOD, "generationConfig": {"responseSchema": {"$schema": "x"}}})], "column-name", 1),
        ([line(GOOD, id="a"), line(GOOD, id="b"), line(GOOD, id=3)], "one-type-per-key", 3),
        ([line({**GOOD, "labels": nested(MAX_NESTING)})], "max-nesting", 1),
    ],
)
def test_each_import_rule_names_its_line(lines: list[bytes], rule: str, bad_line: int) -> None:
    check = Preflight()
    check.check_file("gs://b/in.jsonl", 100, lines)
    assert check.failed
    first = check.violations[0]
    assert (first.rule, first.line, first.uri) == (rule, bad_line, "gs://b/in.jsonl")
    assert f"gs://b/in.jsonl line {bad_line}:" in check.summary()


def test_size_and_count_limits() -> None:
    check = Preflight()
    check.check_file("gs://b/huge.jsonl", (1 << 30) + 1, [])
    assert check.violations[0].rule == "file-size"
    check = Preflight()
    check.requests = 200_000
    check.check_file("gs://b/more.jsonl", 10, [line(GOOD)])
    assert check.violations[0].rule == "max-requests"


def test_valid_input_is_counted_with_shared_prefixes() -> None:
    shared = "Style guide. " * (CACHE_PREFIX_CHARS // 10)
    rows = [line({"systemInstruction": {"parts": [{"text": shared}]}, **GOOD}, id=f"r{i}") for i in range(5)]
    rows.append(line(GOOD, id="short"))
    check = Preflight()
    check.check_file("gs://b/a.jsonl", 10, rows[:3])
    check.check_file("gs://b/b.jsonl", 20, [b"", *rows[3:]])
    assert not check.failed
    assert check.report() == api.PreflightReport(requests=6, shared_prefix_requests=4, files=2, bytes=30)


@pytest.mark.parametrize("key", ["response", "status", "processed_time"])
def test_output_keys_are_refused_in_a_new_jobs_input(key: str) -> None:
    """Vertex passes a row carrying a response through unprocessed and unbilled (that is how resume works):
    in a first attempt's input that would skip the request and let the row claim any token counts."""
    check = Preflight()
    row = {"id": "a", "request": GOOD, key: {"usageMetadata": {"promptTokenCount": 10**9}} if key == "response" else ""}
    check.check_file(
        "gs://b/in.jsonl", 10, [json.dumps({"id": "ok", "request": GOOD}).encode(), json.dumps(row).encode()]
    )
    assert [(v.line, v.rule) for v in check.violations] == [(2, "reserved-key")]
    assert f"'{key}' is a key Vertex writes in its output rows" in check.summary()


TABLE = "bq://demo-project.support.tickets"


def test_a_well_formed_bigquery_input_has_no_problems() -> None:
    columns = [Column("id", "STRING"), Column("request", "JSON"), Column("opened", "DATE"), Column("n", "INT64")]
    assert bigquery_input_problems(TABLE, columns, rows=10) == []
    assert bigquery_input_problems(TABLE, [Column("request", "STRING")], rows=1) == [], "STRING holding JSON is ok"
    previous_output = [Column("request", "JSON"), Column("response", "JSON"), Column("status", "STRING")]
    assert bigquery_input_problems(TABLE, previous_output, rows=5) == [], "a previous output resumes a job"
    assert bigquery_input_problems(TABLE, columns, rows=None) == [], "a view's rows are not counted"


@pytest.mark.parametrize(
    ("columns", "rows", "expected"),
    [
        ([Column("prompt", "JSON")], 1, "has no `request` column"),
        ([Column("request", "INT64")], 1, "column `request` is INT64"),
        ([Column("request", "JSON"), Column("Status", "STRING")], 1, "column `Status` has a name Vertex reserves"),
        ([Column("request", "JSON"), Column("response", "STRING")], 1, "column `response` has a name Vertex reserves"),
        ([Column("request", "JSON"), Column("tags", "STRING", "REPEATED")], 1, "`tags` is ARRAY<STRING>"),
        ([Column("request", "JSON"), Column("where", "GEOGRAPHY")], 1, "`where` is GEOGRAPHY"),
        ([Column("request", "JSON"), Column("meta", "RECORD")], 1, "`meta` is RECORD"),
        ([Column("request", "JSON")], 0, "holds no rows"),
        ([Column("request", "JSON")], 200_001, "at most 200000 requests"),
    ],
)
def test_bigquery_input_rules(columns: list[Column], rows: int, expected: str) -> None:
    [problem] = bigquery_input_problems(TABLE, columns, rows)
    assert expected in problem and TABLE in problem


def test_bigquery_datasets_must_be_in_the_job_region() -> None:
    assert region_problem("input table", TABLE, "us-central1", "us-central1") is None
    assert region_problem("input table", TABLE, "US-CENTRAL1", "us-central1") is None
    other = region_problem("input table", TABLE, "europe-west4", "us-central1")
    assert other and "is in europe-west4, but the job runs in us-central1" in other
    multi = region_problem("output dataset", "bq://p.d", "US", "us-central1")
    assert multi and "a multi-region, which batch prediction does not support" in multi


def test_usage_query_and_its_totals() -> None:
    query = usage_query("demo-project.results.predictions_1")
    assert "FROM `demo-project.results.predictions_1`" in query and TRANSIENT_PATTERN in query
    assert "'" not in TRANSIENT_PATTERN, "the pattern sits in a single-quoted SQL raw string"
    totals = {
        "succeeded": 3,
        "failed_transient": 1,
        "failed_permanent": 2,
        "incomplete": 4,
        "prompt_tokens": 1000,
        "cached_tokens": 250,
        "candidates_tokens": 30,
        "thoughts_tokens": None,  # SUM over no matching rows is NULL
        "total_tokens": 1030,
    }
    usage, rows, _ = from_totals(totals)
    assert rows == api.RowCounts(succeeded=3, failed_transient=1, failed_permanent=2, incomplete=4)
    assert (usage.requests, usage.succeeded, usage.failed, usage.thoughts_tokens) == (10, 3, 3, 0)
    assert usage.cache_hit_ratio == 0.25
