"""The emulator's pure parts: list filters, import rules, token counts, the implicit cache and fault plans."""

from __future__ import annotations

import json

import pytest

from vertex_batch_emulator import inference
from vertex_batch_emulator.faults import FaultPlan, FaultPlanError
from vertex_batch_emulator.filtering import FilterError, compile_filter
from vertex_batch_emulator.importrules import MAX_DEPTH, ImportValidator, ImportViolation

JOBS = [
    {
        "displayName": "nightly-reviews",
        "model": "publishers/google/models/gemini-2.5-flash",
        "state": "JOB_STATE_SUCCEEDED",
        "createTime": "2026-11-20T10:00:00.000000Z",
        "labels": {"team": "search", "bij-uid": "u1"},
    },
    {
        "displayName": "adhoc",
        "state": "JOB_STATE_RUNNING",
        "createTime": "2026-11-22T10:00:00.000000Z",
        "labels": {"team": "ads"},
    },
    {"displayName": "nightly-ads", "state": "JOB_STATE_FAILED", "createTime": "2026-11-24T10:00:00.000000Z"},
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [0, 1, 2]),
        ('state="JOB_STATE_SUCCEEDED"', [0]),
        ("state!=JOB_STATE_SUCCEEDED", [1, 2]),
        ('display_name="adhoc"', [1]),
        ('display_name:"nightly-*"', [0, 2]),
        ('display_name!="adhoc"', [0, 2]),
        ('model_display_name="gemini-2.5-flash"', [0]),
        ('model_display_name!="gemini-2.5-flash"', [1, 2]),
        ("labels.team=search", [0]),
        ("labels.team:*", [0, 1]),
        ("labels.bij-uid=u1", [0]),
        ('labels.team!="search"', [1, 2]),
        ('create_time>"2026-11-21T00:00:00Z"', [1, 2]),
        ('create_time<="2026-11-22T10:00:00Z"', [0, 1]),
        ('create_time="2026-11-24T10:00:00Z"', [2]),
        ('state="JOB_STATE_SUCCEEDED" AND display_name:"nightly-*"', [0]),
        ('state="JOB_STATE_SUCCEEDED" OR state="JOB_STATE_FAILED"', [0, 2]),
        ("NOT labels.team:*", [2]),
        ("-labels.team:*", [2]),
        ('display_name:"nightly-*" labels.team=search', [0]),
        ('display_name:"nightly-*" AND (labels.team=ads OR state=JOB_STATE_FAILED)', [2]),
        # AIP-160: OR binds tighter than AND
        ("labels.team=ads AND state=JOB_STATE_RUNNING OR state=JOB_STATE_FAILED", [1]),
    ],
)
def test_filters(text: str, expected: list[int]) -> None:
    predicate = compile_filter(text)
    assert [i for i, job in enumerate(JOBS) if predicate(job)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "state=",
        "(state=X",
        'create_time>"yesterday"',
        "colour=red",
        "state ~ x",
        "state=RUNNING",  # not a JobState
        # Undocumented spellings: the discovery document lists display_name, model_display_name, state,
        # create_time and labels only; real Vertex may refuse the others, so the emulator does.
        'createTime>="2026-11-21T00:00:00Z"',
        'displayName="adhoc"',
        'modelDisplayName="gemini-2.5-flash"',
    ],
)
def test_bad_filters_are_refused(text: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(text)


def line(request: object, **extra: object) -> bytes:
    return json.dumps({**extra, "request": request}).encode()


GOOD = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def deep(levels: int) -> dict:
    node: dict = {"text": "x"}
    for _ in range(levels):
        node = {"inner": node}
    return node


@pytest.mark.parametrize(
    ("lines", "rule", "bad_line"),
    [
        ([line(GOOD), b"{not json"], "json", 2),
        ([line(GOOD), b"[1, 2]"], "object", 2),
        ([line(GOOD), json.dumps({"id": 1}).encode()], "request", 2),
        ([line(GOOD), json.dumps({"request": "text"}).encode()], "request", 2),
        ([line({**GOOD, "tools": [{"googleSearch": {}}]})], "empty-object", 1),
        ([line({**GOOD, "generationConfig": {"responseSchema": {"$defs": {"a": 1}}}})], "column-name", 1),
        ([line({**GOOD, "labels": {"has space": "x"}})], "column-name", 1),
        ([line(GOOD, id="a1"), line(GOOD, id=2)], "one-type-per-key", 2),
        ([line(GOOD), line({"contents": [{"role": "user", "parts": [{"text": 5}]}]})], "one-type-per-key", 2),
        ([line({**GOOD, "extra": deep(MAX_DEPTH)})], "max-depth", 1),
    ],
)
def test_import_rules(lines: list[bytes], rule: str, bad_line: int) -> None:
    validator = ImportValidator()
    with pytest.raises(ImportViolation) as violation:
        for number, raw in enumerate(lines, 1):
            validator.check("gs://b/in.jsonl", number, raw)
    assert (violation.value.rule, violation.value.line) == (rule, bad_line)
    assert f"gs://b/in.jsonl line {bad_line}:" in str(violation.value)


def test_import_rules_accept_valid_and_resume_rows() -> None:
    validator = ImportValidator()
    rows = [
        line(GOOD, id="a"),
        line({**GOOD, "extra": deep(MAX_DEPTH - 2)}, id="b"),
        json.dumps({"id": "c", "request": GOOD, "status": "Bad Request: ...", "response": {}}).encode(),
        b"",
    ]
    parsed = [validator.check("gs://b/in.jsonl", n, raw) for n, raw in enumerate(rows, 1)]
    assert parsed[-1] is None and validator.requests == 3


def test_import_rules_count_requests_across_files() -> None:
    validator = ImportValidator()
    validator.requests = 200_000
    with pytest.raises(ImportViolation) as violation:
        validator.check("gs://b/part-2.jsonl", 1, line(GOOD))
    assert violation.value.rule == "max-requests"


def test_token_rule_is_the_documented_one() -> None:
    request = {
        "systemInstruction": {"parts": [{"text": "a" * 10}]},
        "contents": [{"role": "user", "parts": [{"text": "b" * 30}]}],
    }
    response = inference.generate("gemini-2.0-flash-001", "p", request, inference.ImplicitCache())
    usage = response["usageMetadata"]
    assert usage["promptTokenCount"] == 10  # ceil(40 / 4)
    text = response["candidates"][0]["content"]["parts"][0]["text"]
    assert usage["candidatesTokenCount"] == -(-len(text) // 4)
    assert "thoughtsTokenCount" not in usage and "cachedContentTokenCount" not in usage
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert inference.generate("gemini-2.0-flash-001", "p", request, inference.ImplicitCache()) == response


def test_thinking_models_report_thoughts_within_budget() -> None:
    request = {"contents": [{"parts": [{"text": "x" * 400}]}]}
    usage = inference.generate("gemini-2.5-flash", "p", request, inference.ImplicitCache())["usageMetadata"]
    assert usage["thoughtsTokenCount"] == 32 + 100 // 8
    capped = {**request, "generationConfig": {"thinkingConfig": {"thinkingBudget": 10}}}
    assert (
        inference.generate("gemini-2.5-pro", "p", capped, inference.ImplicitCache())["usageMetadata"][
            "thoughtsTokenCount"
        ]
        == 10
    )
    off = {**request, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    assert (
        "thoughtsTokenCount"
        not in inference.generate("gemini-2.5-flash", "p", off, inference.ImplicitCache())["usageMetadata"]
    )


def test_implicit_cache_counts_shared_prefix_blocks() -> None:
    cache = inference.ImplicitCache(threshold_tokens=2048)
    shared = "s" * (3000 * 4)  # a 3,000-token shared prefix
    assert cache.lookup_and_remember("p", "m", shared + "first question") == 0, "nothing cached yet"
    hit = cache.lookup_and_remember("p", "m", shared + "second question")
    assert hit == (3000 // 256) * 256 == 2816
    assert cache.lookup_and_remember("other-project", "m", shared + "third") == 0, "per project"
    assert cache.lookup_and_remember("p", "other-model", shared + "third") == 0, "per model"
    short = "t" * (1000 * 4)
    cache.lookup_and_remember("p", "m", short + "a")
    assert cache.lookup_and_remember("p", "m", short + "b") == 0, "below the threshold"


def test_implicit_cache_is_bounded() -> None:
    cache = inference.ImplicitCache(threshold_tokens=256, capacity=10)
    for index in range(50):
        cache.lookup_and_remember("p", "m", f"{index:04d}" * 2000)
    assert len(cache._entries) <= 10


def test_a_key_ending_in_a_newline_is_not_a_column_name() -> None:
    """`$` in a Python regex also matches before a final newline: the key must be matched whole."""
    line = json.dumps({"request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "labels": {"a\n": "x"}}})
    with pytest.raises(ImportViolation) as refused:
        ImportValidator().check("gs://b/in.jsonl", 1, line.encode())
    assert refused.value.rule == "column-name" and refused.value.line == 1


def fired(plan: FaultPlan, method: str, calls: int) -> list[int]:
    """The numbers of the calls (of `calls` to `method`) that an api fault failed."""
    return [n for n in range(calls) if plan.take_api_fault(method) is not None]


def test_an_api_fault_with_a_rate_fails_that_share_of_calls_up_to_its_count_and_repeats_by_seed() -> None:
    plan = FaultPlan()
    plan.add({"api": [{"method": "get", "code": 503, "rate": 0.4, "seed": 3, "count": 1000}]})
    share = len(fired(plan, "get", 1000)) / 1000
    assert 0.33 < share < 0.47, share

    runs = []
    for _ in range(2):
        plan = FaultPlan()
        plan.add({"api": [{"method": "list", "code": 429, "rate": 0.5, "seed": 9, "count": 4}]})
        runs.append(fired(plan, "list", 40))
    assert runs[0] == runs[1] and len(runs[0]) == 4 and runs[0] != [0, 1, 2, 3], runs
    assert plan.api == [], "spent after `count` failures"


def test_a_call_an_api_fault_spares_goes_on_to_the_next_fault_of_the_method() -> None:
    plan = FaultPlan()
    plan.add(
        {
            "api": [
                {"method": "create", "code": 500, "rate": 0.3, "seed": 1, "count": 3},
                {"method": "create", "code": 429, "count": 100},
            ]
        }
    )
    faults = [plan.take_api_fault("create") for _ in range(30)]
    codes = [fault.code if fault else None for fault in faults]
    assert codes.count(500) == 3 and codes.count(429) == 27, codes


@pytest.mark.parametrize("rate", [0, -0.1, 1.5])
def test_an_api_fault_rate_must_be_a_share(rate: float) -> None:
    with pytest.raises(FaultPlanError, match="rate"):
        FaultPlan().add({"api": [{"method": "get", "code": 503, "rate": rate}]})


# ---------------------------------------------------------------- proto3 JSON, as Google's front end reads it


def test_proto3_json_names_nulls_and_output_only_fields() -> None:
    from vertex_batch_emulator.protojson import parse

    body = {
        "display_name": "d",
        "inputConfig": {"instances_format": "jsonl", "gcs_source": {"uris": ["gs://b/x"]}},
        "labels": None,  # null: unset
        "state": "JOB_STATE_RUNNING",  # output-only: dropped
        "create_time": "2026-01-01T00:00:00Z",
    }
    assert parse(body, "BatchPredictionJob", "batch_prediction_job") == {
        "displayName": "d",
        "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://b/x"]}},
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"displayName": "a", "display_name": "b"}, "Duplicate"),
        ({"displayname": "a"}, 'Unknown name "displayname"'),
        ({"display_Name": "a"}, 'Unknown name "display_Name"'),
        ({"inputConfig": {"gcsSource": {"uris": "gs://b/x"}}}, "batch_prediction_job.input_config.gcs_source.uris"),
        ({"inputConfig": {"gcsSource": {"uris": [1]}}}, "gcs_source.uris[0]' (TYPE_STRING), 1"),
        ({"state": "RUNNING"}, "TYPE_ENUM"),
        ({"generateExplanation": "yes"}, "TYPE_BOOL"),
        ({"outputConfig": "gs://b/o"}, "aiplatform.v1.BatchPredictionJob.OutputConfig"),
        ({"endpoint": "e"}, 'Unknown name "endpoint"'),  # a v1beta1 field, unknown to v1
    ],
)
def test_proto3_json_refusals_name_the_field(body: dict, words: str) -> None:
    from vertex_batch_emulator.errors import ApiError
    from vertex_batch_emulator.protojson import parse

    with pytest.raises(ApiError) as refused:
        parse(body, "BatchPredictionJob", "batch_prediction_job")
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    described = refused.value.message + " " + str(refused.value.details)
    assert words in described, described
    assert parse({"endpoint": "e"}, "BatchPredictionJob", "batch_prediction_job", "v1beta1") == {"endpoint": "e"}
