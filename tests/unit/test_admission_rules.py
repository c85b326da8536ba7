"""The string rules of the API: each written once, judged alike by pydantic and by CEL (RE2), readable,
and cheap enough for a real apiserver's CEL cost estimate."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import celpy
import pytest

from batch_inference_operator import api, crd
from batch_inference_operator.api import cel, fields
from batch_inference_operator.api.cel import Check

CHECKS: dict[str, list[Check]] = {
    "gcs-object": fields.GCS_OBJECT_CHECKS,
    "gcs-prefix": fields.GCS_PREFIX_CHECKS,
    "bq-table": fields.BQ_TABLE_CHECKS,
    "bq-dataset": fields.BQ_DATASET_CHECKS,
    "model": fields.MODEL_CHECKS,
    "project": fields.PROJECT_CHECKS,
    "location": fields.LOCATION_CHECKS,
    "label-value": fields.LABEL_VALUE_CHECKS,
    "label-key": fields.LABEL_KEY_CHECKS,
}
SAMPLES = [
    "gs://bkt/in.jsonl",
    "gs://bkt/a/*.jsonl",
    "gs://bkt/a/b/",
    "gs://bkt/",
    "gs://bkt",
    "gs://bkt/a.jsonl\n",
    "gs://bkt/a/../b",
    "gs://bkt/a/./b",
    "gs://bkt/a/..",
    "gs://bkt/.hidden/x",
    "gs://bkt/a/.../x",
    "gs://bkt//a",
    "gs://bkt/a//",
    "gs://bkt/%2E%2E/x",
    "gs://bkt/a\\b",
    "gs://bkt/a\tb",
    "gs:/bkt/a",
    "https://storage.googleapis.com/bkt/a",
    "GS://bkt/a",
    "gs://B/a",
    "bq://demo-project.ds.t",
    "bq://demo-project.ds",
    "bq://demo-project:ds.t",
    "demo-project:ds.t",
    "demo-project.ds.t",
    "bq://demo-project.ds.t\n",
    "gemini-2.5-flash",
    "gemini-2.5-flash\n",
    "Gemini-2.5-Flash",
    "publishers/google/models/gemini-2.5-pro",
    "projects/p/locations/us-central1/models/123@2",
    "demo-project",
    "123456789012",
    "us-central1",
    "us-central1-a",
    "US Central",
    "team",
    "Team",
    "bij-uid",
    "",
    "x" * 64,
]


def _cel(expression: str, value: str) -> bool:
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))
    return bool(program.evaluate({"self": celpy.json_to_cel(value), "k": celpy.json_to_cel(value)}))


@pytest.mark.parametrize("kind", CHECKS)
def test_python_and_cel_agree(kind: str) -> None:
    """Python's `re` and RE2 differ (`$` before a final newline, for one): every check is evaluated by
    both on the same values, through cel-python, which uses RE2 as the apiserver does."""
    for check in CHECKS[kind]:
        for value in SAMPLES:
            assert check.ok.check(value) == _cel(check.ok.cel("self"), value), (kind, check.message, value)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("gs://ml-data/team-a/in.jsonl", True),
        ("gs://ml-data/team-a/*.jsonl", True),
        ("gs://ml-data/team-a/2026-11/part-*.jsonl", True),
        ("gs://ml-data/team-a/v1.2/in.jsonl", True),
        ("gs://ml-data/team-a/.config/in.jsonl", True),
        ("gs://ml-data/team-a/../team-b/in.jsonl", False),
        ("gs://ml-data/team-a/./in.jsonl", False),
        ("gs://ml-data/team-a//in.jsonl", False),
        ("gs://ml-data//team-a/in.jsonl", False),
        ("gs://ml-data/team-a/%2E%2E/team-b/in.jsonl", False),
        ("gs://ml-data/team-a\\..\\team-b\\in.jsonl", False),
        ("gs://ml-data/team-a/in.jsonl\r", False),
        ("gs://ml-data/team-a/", False),
        ("gs://ml-data", False),
    ],
)
def test_input_uris_are_checked_as_paths(value: str, accepted: bool) -> None:
    problems = cel.failures(fields.GCS_OBJECT_CHECKS, value)
    assert (problems == []) == accepted, problems
    spec = {
        "model": "gemini-2.5-flash",
        "input": {"gcs": {"uris": [value]}},
        "output": {"gcs": {"uriPrefix": "gs://out/"}},
    }
    if accepted:
        assert api.parse_spec(spec).input.uris() == [value]
    else:
        with pytest.raises(ValueError, match=re.escape(problems[0])):
            api.parse_spec(spec)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("gs://ml-data/team-a/out/", True),
        ("gs://ml-data/team-a/out", True),
        ("gs://ml-data/", True),
        ("gs://ml-data", True),
        ("gs://ml-data/team-a/../team-b/out/", False),
        ("gs://ml-data/team-a/..", False),
        ("gs://ml-data/team-a/.", False),
        ("gs://ml-data/team-a/out//", False),
        ("gs://ml-data//", False),
        ("gs://ml-data/team-a/%2e%2e/", False),
    ],
)
def test_output_prefixes_are_checked_as_paths(value: str, accepted: bool) -> None:
    assert (cel.failures(fields.GCS_PREFIX_CHECKS, value) == []) == accepted


def test_no_raw_regex_reaches_the_user() -> None:
    """The CRD carries no `pattern` (the apiserver would answer with the regex itself) and every rule has
    a message in words."""
    for path, node in _nodes(_openapi()):
        assert "pattern" not in node, path
        for entry in node.get("x-kubernetes-validations", []):
            assert entry["message"] and not re.search(r"[\^$]|\{\d", entry["message"]), (path, entry)


# ---------------------------------------------------------------- CEL cost, as the apiserver estimates it

STATIC_COST_LIMIT = 10_000_000  # per expression, times its cardinality (StaticEstimatedCostLimit)
CRD_COST_LIMIT = 100_000_000  # all expressions of the CRD (StaticEstimatedCRDCostLimit)
PER_CALL_LIMIT = 1_000_000  # one evaluation at runtime (PerCallLimit)
_CALL = re.compile(r"\.(matches|contains|startsWith)\((r?)'((?:[^'\\]|\\.)*)'\)")
_KNOWN = re.compile(r"\b(self|oldSelf|has|all|k|matches|contains|startsWith)\b|[!=|&()., ]|'(?:[^'\\]|\\.)*'")


def _openapi() -> dict[str, Any]:
    return crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _nodes(node: dict[str, Any], path: str = "", cardinality: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, {**node, "_cardinality": cardinality}
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}", cardinality)
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]", cardinality * node.get("maxItems", 10**9))
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}", cardinality * node.get("maxProperties", 10**9))


def _rule_cost(rule: str, node: dict[str, Any]) -> int:
    """cel-go's estimate for the calls these rules use: a string's size is 4 bytes per character of its
    maxLength; `matches` costs ceil((size+1)*0.1)*ceil(len(regex)*0.25), `contains` ceil(size*0.1) times
    ceil(len(text)*0.1); a map key has no declared size; a comprehension runs once per entry."""
    size = 4 * node["maxLength"] if node.get("type") == "string" else 0
    cost = 0
    for function, _raw, literal in _CALL.findall(rule):
        if function == "matches":
            cost += math.ceil((size + 1) * 0.1) * math.ceil(len(literal) * 0.25)
        elif function == "contains":
            cost += math.ceil(size * 0.1) * math.ceil(len(literal) * 0.1)
        else:
            cost += math.ceil(len(literal) * 0.1)
    cost += 10 * rule.count("(") + 10  # calls, selections and operators: a generous constant each
    if "self.all(" in rule:
        cost = (cost + 10) * node.get("maxProperties", 10**9)
    return cost


def test_every_rule_reads_bounded_values_and_fits_the_cost_budget() -> None:
    total = 0
    for path, node in _nodes(_openapi()):
        for entry in node.get("x-kubernetes-validations", []):
            rule = entry["rule"]
            leftover = _KNOWN.sub("", re.sub(r"\.matches\(r'[^']*'\)", "", rule))
            assert re.fullmatch(r"[\w.]*", leftover), f"{path}: the estimate does not know {leftover!r} in {rule}"
            if node.get("type") == "string":
                assert "maxLength" in node, f"{path} is read by a rule but has no maxLength"
            if "self.all(" in rule:
                assert "maxProperties" in node, f"{path} is iterated by a rule but has no maxProperties"
            assert node["_cardinality"] < 10**9, f"{path} sits in a list or map without maxItems/maxProperties"
            cost = _rule_cost(rule, node)
            assert cost < PER_CALL_LIMIT, (path, rule, cost)
            assert cost * node["_cardinality"] < STATIC_COST_LIMIT, (path, rule, cost)
            total += cost * node["_cardinality"]
    assert total < CRD_COST_LIMIT / 10, f"estimated CRD cost {total}: keep a wide margin under the limit"
