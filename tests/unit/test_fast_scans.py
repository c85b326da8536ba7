"""The typed, field-selective usage scan classifies every row exactly as decoding whole rows does
(orjson, the rules written for dicts), odd and corrupt rows included."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_inference_operator.adapters.gcs import split_lines
from batch_inference_operator.core.usage import scan, scan_stream

USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 2, "totalTokenCount": 12}
ODD_ROWS = [
    b'{"status": "", "response": {"usageMetadata": null}}',
    b'{"status": "", "response": {"usageMetadata": {"promptTokenCount": ""}}}',
    b'{"status": "", "response": {"usageMetadata": {"promptTokenCount": false}}}',
    b'{"status": "", "response": {"usageMetadata": {"promptTokenCount": true}}}',
    b'{"status": "", "response": {"usageMetadata": {"promptTokenCount": -1}}}',
    b'{"status": "", "response": {"usageMetadata": {"promptTokenCount": 1.0}}}',
    b'{"status": "", "response": {"usageMetadata": "many"}}',
    b'{"status": "", "response": {"candidates": []}}',
    b'{"status": "", "response": {}}',
    b'{"status": null, "response": null}',
    b'{"status": 400, "response": {}}',
    b'{"status": "", "response": []}',
    b'{"status": 1, "status": "", "response": {"usageMetadata": {"totalTokenCount": 3}}}',
    b'{"status": "Bad Request: {\\"error\\": {\\"code\\": 400}}", "response": {"usageMetadata": 7}}',
    b'{"status": 1, "response": {',
    b'{"request": {"contents": [{"parts": [{"text": "caf\xe9"}]}]}, "status": "", "response": {}}',
    b'{"request": {"contents": [{"parts": [{"text": "caf\xc3\xa9"}]}]}, "status": ""}',
    b"[1, 2]",
    b'"text"',
    b"null",
    b"{oops",
    b"   ",
    b"",
]


def test_odd_rows_are_classified_as_whole_rows_would_be() -> None:
    lines = [json.dumps({"status": "", "response": {"usageMetadata": USAGE}}).encode(), *ODD_ROWS]
    assert scan(lines) == scan(lines, loads=orjson.loads)
    assert scan(lines).rows.unreadable >= 10


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
metadata = st.dictionaries(st.sampled_from([*sorted(USAGE), "thoughtsTokenCount", "x"]), json_values, max_size=4)
rows = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["", 'Too Many Requests: {"error": {"code": 429}}']) | json_values,
        "response": st.fixed_dictionaries({}, optional={"usageMetadata": metadata | json_values}) | json_values,
        "request": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows | json_values, max_size=6))
def test_any_rows_are_classified_as_whole_rows_would_be(values: list[object]) -> None:
    lines = [orjson.dumps(value) for value in values]
    assert scan(lines) == scan(lines, loads=orjson.loads)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\n")), st.lists(st.integers(1, 20), max_size=8))
def test_lines_are_split_the_same_however_the_stream_is_chunked(data: bytes, cuts: list[int]) -> None:
    chunks, rest = [], data
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    whole = data.split(b"\n")
    expected = whole[:-1] if whole[-1] == b"" else whole
    assert list(split_lines(chunks)) == expected


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    chunks, rest = [], data
    for size in cuts:
        chunks.append(rest[:size])
        rest = rest[size:]
    return [*chunks, rest]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*ODD_ROWS, b'{"status": "", "response": {"usageMetadata": {"totalTokenCount": 3}}}'])),
    st.lists(st.integers(0, 90), max_size=12),
    st.sampled_from([b"", b"\n"]),
)
def test_a_stream_cut_anywhere_scans_as_its_lines_do(rows: list[bytes], cuts: list[int], tail: bytes) -> None:
    """Rows decoded from views into the chunks: the same counts, and failed rows keep their line numbers
    (blank lines count), whatever the chunk boundaries."""
    data = b"\n".join(rows) + tail
    lines = list(split_lines([data]))
    assert scan_stream(cut(data, cuts)) == scan(lines)


def test_a_stream_keeps_row_numbers_and_checks_utf8_in_views() -> None:
    failed = b'{"status": "Bad Request: {\\"error\\": {\\"code\\": 400}}"}'
    data = b"\n".join([b"", b"  ", failed, b'{"request": "caf\xe9", "status": ""}', failed, b"\t"]) + b"\n"
    found = scan_stream(cut(data, [3, 40]))
    assert [error.line for error in found.errors] == [3, 5]
    assert found.rows.unreadable == 1
    assert found == scan(data.split(b"\n")[:-1])
