"""Row keys and duplicate keys, the token and cost estimate, and the shard plan (pure), and what preflight
and `decide` make of them."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from test_controller import BucketStorage, FakeStorage, FakeTables
from test_reconcile import DEFAULTS, RESOURCE, T0, condition, empty, spec

from batch_inference_operator import api
from batch_inference_operator.controller import checks
from batch_inference_operator.core.actions import RunPreflight
from batch_inference_operator.core.decide import decide
from batch_inference_operator.core.keys import KeyDigests, canonical, content_key, row_key
from batch_inference_operator.core.pricing import DEFAULT_PRICES, cost_problem, estimate_input
from batch_inference_operator.core.record import record_preflight
from batch_inference_operator.core.sharding import Planner, row_ranges, shard_file, shard_table
from batch_inference_operator.core.tokens import Tally, request_tokens


def line(i: int, **extra: object) -> bytes:
    return json.dumps({**extra, "request": {"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}}).encode()


# ---------------------------------------------------------------- keys


def test_the_content_key_is_the_form_vertex_echoes() -> None:
    snake = {"system_instruction": {"parts": [{"text": "be brief"}]}, "contents": [], "tools": None}
    camel = {"contents": [], "systemInstruction": {"parts": [{"text": "be brief"}]}}
    assert canonical(snake) == camel
    assert content_key(snake) == content_key(camel)
    assert content_key(snake).startswith("sha256:") and len(content_key(snake)) == 7 + 64
    assert content_key({"contents": [{"parts": [{"text": "a"}]}]}) != content_key(
        {"contents": [{"parts": [{"text": "b"}]}]}
    )


def test_a_rows_own_key_wins_and_must_be_a_string_or_an_integer() -> None:
    request = {"contents": []}
    assert row_key({"key": "t-1", "request": request}, "key") == "t-1"
    assert row_key({"id": 42, "request": request}, "id") == "42"
    assert row_key({"request": request}, "key") == content_key(request)
    assert row_key({"key": 1.5, "request": request}, "key") is None
    assert row_key({"key": True, "request": request}, "key") is None
    assert row_key({"key": {"a": 1}, "request": request}, "key") is None


def test_key_digests_find_repeats_in_eight_bytes_a_row() -> None:
    digests = KeyDigests()
    for key in ["a", "b", "c", "b", "d", "a", "a"]:
        digests.add(key)
    assert len(digests.data) == 7 * 8
    assert len(digests.duplicated()) == 2
    unique = KeyDigests()
    for i in range(1000):
        unique.add(f"k{i}")
    assert unique.duplicated() == []


def test_preflight_refuses_duplicate_keys_with_their_lines() -> None:
    rows = [line(1, key="a"), line(2, key="b"), b"", line(3, key="a"), line(4), line(4)]
    storage = FakeStorage({"gs://b/in.jsonl": rows})
    checked = checks.check_input(storage, FakeTables({}, {}), RunPreflight(("gs://b/in.jsonl",), "us-central1", "p"))
    assert len(checked.problems) == 1, checked.problems
    assert "duplicate key 'a' at gs://b/in.jsonl lines 1 and 4" in checked.problems[0]
    # lines 5 and 6: the same request and no key of their own: interchangeable, joined one answer each


def test_a_key_field_holding_an_object_is_refused_at_its_line() -> None:
    rows = [line(1, id="x"), line(2, id={"n": 2})]
    action = RunPreflight(("gs://b/in.jsonl",), "us-central1", "p", key_field="id")
    _, problems = checks.preflight(FakeStorage({"gs://b/in.jsonl": rows}), FakeTables({}, {}), action)
    assert len(problems) == 1 and "line 2" in problems[0] and "'id' holds an object" in problems[0]


# ---------------------------------------------------------------- the estimate


def test_tokens_are_characters_over_four_and_media_parts() -> None:
    request = {
        "systemInstruction": {"parts": [{"text": "x" * 10}]},
        "contents": [{"parts": [{"text": "y" * 7}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}],
        "generationConfig": {"maxOutputTokens": 100},
    }
    assert request_tokens(request) == (5 + 258, 100)
    assert request_tokens({"contents": [{"parts": [{"text": "abcd"}]}]}) == (1, None)


def test_the_cost_estimate_and_the_limit() -> None:
    tally = Tally()
    for _ in range(1000):
        tally.add({"contents": [{"parts": [{"text": "z" * 4000}]}], "generationConfig": {"maxOutputTokens": 500}})
    estimate = estimate_input(tally, "gemini-2.5-flash", DEFAULT_PRICES)
    # 1,000,000 input tokens at $0.30 and 500,000 output tokens at $2.50, per million, at half price
    assert estimate.input_tokens == 1_000_000 and Decimal(estimate.cost_usd or "0") == Decimal("0.775")
    assert "maxOutputTokens of each request" in estimate.method
    assert cost_problem(estimate, None, "gemini-2.5-flash") is None
    assert cost_problem(estimate, "1.00", "gemini-2.5-flash") is None
    refusal = cost_problem(estimate, "0.50", "gemini-2.5-flash")
    assert (
        refusal
        and "$0.7750" in refusal
        and "maxEstimatedCostUSD $0.50" in refusal
        and "nothing was submitted" in refusal
    )
    unpriced = estimate_input(tally, "gemini-9-ultra", DEFAULT_PRICES)
    assert unpriced.cost_usd is None
    assert "no price for gemini-9-ultra" in (cost_problem(unpriced, "5", "gemini-9-ultra") or "")


def test_max_estimated_cost_is_a_decimal_string_and_needs_preflight() -> None:
    assert spec(maxEstimatedCostUSD="25.00", preflight="Enabled").max_estimated_cost_usd == "25.00"
    for field, value in (("maxEstimatedCostUSD", "25"), ("sharding", {"maxRequestsPerShard": 10})):
        try:
            spec(**{field: value})  # the test spec has preflight Disabled
        except ValueError as error:
            assert f"spec.{field} needs spec.preflight: Enabled" in str(error)
        else:
            raise AssertionError(f"{field} was accepted with preflight Disabled")
    for bad in ("$25", "-1", "1e3", "25.00001"):
        try:
            spec(maxEstimatedCostUSD=bad, preflight="Enabled")
        except ValueError as error:
            assert "spec.maxEstimatedCostUSD" in str(error)
        else:
            raise AssertionError(f"{bad} was accepted")


# ---------------------------------------------------------------- the shard plan


def plan(files: dict[str, bytes], max_rows: int, max_bytes: int) -> tuple[Planner, list[bytes]]:
    """Feed the planner as preflight does, and build each shard's bytes from its pieces."""
    planner = Planner(max_rows, max_bytes)
    for uri, data in files.items():
        planner.start_file(uri, len(data))
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for raw in lines:
            planner.line(len(raw), bool(raw.strip()))
    shards = planner.finish()
    built = [
        b"".join(files[p.uri][p.start : p.end] + (b"\n" if p.newline else b"") for p in shard.pieces)
        for shard in shards
    ]
    return planner, built


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.integers(0, 10**6).map(lambda i: line(i)), st.just(b""), st.just(b"  ")), max_size=30),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.booleans(), min_size=4, max_size=4),
    st.integers(1, 7),
    st.integers(60, 400),
)
def test_shards_hold_exactly_the_inputs_requests_in_order_within_the_limits(
    contents: list[list[bytes]], terminated: list[bool], max_rows: int, max_bytes: int
) -> None:
    files = {
        f"gs://b/in-{n}.jsonl": b"\n".join(rows) + (b"\n" if terminated[n] and rows else b"")
        for n, rows in enumerate(contents)
    }
    planner, built = plan(files, max_rows, max_bytes)
    requests = [raw for data in files.values() for raw in data.split(b"\n") if raw.strip()]
    assert [raw for shard in built for raw in shard.split(b"\n") if raw.strip()] == requests
    for shard, data in zip(planner.shards, built, strict=True):
        assert data.endswith(b"\n"), "no shard's last line runs into anything"
        assert shard.bytes == len(data)
        assert 1 <= shard.rows <= max_rows and shard.rows == sum(1 for raw in data.split(b"\n") if raw.strip())
        assert shard.bytes <= max_bytes or shard.rows == 1
    assert planner.requests == len(requests)
    assert planner.split == (len(requests) > max_rows or any(len(d) > max_bytes for d in files.values()))


def test_an_input_within_the_limits_is_not_split() -> None:
    planner, built = plan({"gs://b/a.jsonl": b"\n".join(line(i) for i in range(10))}, 10, 1 << 20)
    assert not planner.split and len(built) == 1


def test_shard_names_and_table_ranges() -> None:
    assert shard_file("gs://b/out/", 3) == "gs://b/out/shards/input-00003.jsonl"
    assert shard_file("gs://b/out", 12) == "gs://b/out/shards/input-00012.jsonl"
    assert shard_table("bq://p.out", "bq://p.in.requests", 2, 3) == "bq://p.out.requests_shard00002of00003"
    assert row_ranges(450, 200) == [(1, 150), (151, 300), (301, 450)]
    assert row_ranges(7, 3) == [(1, 3), (4, 5), (6, 7)]
    assert row_ranges(5, 5) == [(1, 5)]


def test_preflight_plans_shards_only_under_a_cloud_storage_output() -> None:
    rows = [line(i) for i in range(250)]
    storage = BucketStorage({"gs://b/in.jsonl": rows}, {"b": None})
    sharded = RunPreflight(("gs://b/in.jsonl",), "us-central1", "p", gcs_output="gs://b/out/", max_rows=100)
    checked = checks.check_input(storage, FakeTables({}, {}), sharded)
    assert checked.problems == [] and checked.split
    assert [s.rows for s in checked.shards] == [100, 100, 50]
    assert checked.report.requests == 250 and checked.tally.requests == 250
    over = [line(i) for i in range(200_001)]
    _, problems = checks.preflight(
        FakeStorage({"gs://b/in.jsonl": over}),
        FakeTables({}, {}),
        RunPreflight(("gs://b/in.jsonl",), "us-central1", "p", bigquery_output=None),
    )
    assert len(problems) == 1 and "more than 200000 requests" in problems[0] and "line 200001" in problems[0]


# ---------------------------------------------------------------- decide


def test_a_split_input_submits_nothing_for_the_whole_and_says_so() -> None:
    s = spec(preflight="Enabled")
    first = decide(s, empty(), None, RESOURCE, DEFAULTS, T0)
    shards = [
        api.Shard(index=i, input=[f"gs://out-bucket/results/shards/input-0000{i}.jsonl"], rows=10) for i in (1, 2)
    ]
    checked = record_preflight(first.status, api.PreflightReport(requests=20), api.Estimate(input_tokens=5), shards)
    after = decide(s, checked, None, RESOURCE, DEFAULTS, T0)
    assert after.actions == [] and after.status.attempts == []
    assert after.status.phase == "Pending" and condition(after.status, "Sharded") == ("True", "ShardsPlanned")
    assert [e.reason for e in after.events] == ["ShardsPlanned"] and "2 shards" in after.status.message
    again = decide(s, after.status, None, RESOURCE, DEFAULTS, T0)
    assert again.actions == [] and again.events == [] and again.status.attempts == []
    single = decide(s, record_preflight(first.status, api.PreflightReport(requests=20)), None, RESOURCE, DEFAULTS, T0)
    assert single.status.attempts[0].input == ["gs://in-bucket/requests.jsonl"], "one job: the input as it is"
