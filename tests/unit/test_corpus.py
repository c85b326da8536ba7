"""The bad-input corpus (tests/corpus/): every manifest is refused by the CRD (as the stand-in enforces it,
like an apiserver) and by the operator's `parse_spec`, both naming the field with the text users are
expected to read; every JSONL file is refused by the operator's preflight and by the Vertex emulator's
import rules, on the same line. The expected outcomes are data, in each folder's expected.yaml."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from batch_inference_operator import api, crd
from batch_inference_operator.core.preflight_jsonl import Preflight, rejection
from conftest import REPO
from local_stack.kube.schema import CrdSchema
from vertex_batch_emulator.importrules import ImportValidator, ImportViolation

CORPUS = REPO / "tests" / "corpus"
MANIFESTS = CORPUS / "manifests"
JSONL = CORPUS / "jsonl"
SCHEMA = CrdSchema.from_crd(crd.build_crd())


def expected(folder: Any) -> dict[str, dict[str, Any]]:
    return yaml.safe_load((folder / "expected.yaml").read_text())


def test_every_file_has_an_expected_outcome_and_the_corpus_is_big_enough() -> None:
    for folder, suffix, least in [(MANIFESTS, ".yaml", 50), (JSONL, ".jsonl", 25)]:
        files = {p.name for p in folder.iterdir() if p.suffix == suffix and p.name != "expected.yaml"}
        assert files == set(expected(folder)), f"{folder.name}: files and expected.yaml differ"
        assert len(files) >= least


# ---------------------------------------------------------------- manifests: refused at apply


def _per_field(text: str) -> list[str]:
    """parse_spec's message, one entry per field (messages themselves may hold '; ')."""
    return re.split(r"; (?=spec[\w.\[\]]*: )", text)


def cluster_refusal(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, what kubectl prints for it) for every problem the CRD finds, unknown fields first."""
    _, unknown, causes = SCHEMA.admit(manifest)
    return [(path, f'strict decoding error: unknown field "{path}"') for path in unknown] + [
        (cause.field, cause.render()) for cause in causes
    ]


@pytest.mark.parametrize("name", sorted(expected(MANIFESTS)))
def test_manifest_is_refused_by_the_crd_and_the_operator_alike(name: str) -> None:
    outcome = expected(MANIFESTS)[name]
    manifest = yaml.safe_load((MANIFESTS / name).read_text())
    field, message = outcome["field"], outcome["message"]
    assert outcome["where"] == "apply"
    assert manifest["metadata"]["name"] == name.removesuffix(".yaml")

    refused = cluster_refusal(manifest)
    assert refused, f"the CRD accepted {name}"
    assert any(at == field and message in text for at, text in refused), (
        f"the CRD does not say {message!r} at {field}: {refused}"
    )

    with pytest.raises(ValueError) as operator_refusal:
        api.parse_spec(manifest["spec"])
    lines = _per_field(str(operator_refusal.value))
    assert any(line.startswith(f"{field}: ") and message in line for line in lines), (
        f"parse_spec does not say {message!r} at {field}: {lines}"
    )


# ---------------------------------------------------------------- JSONL: refused by preflight and by Vertex


def lines_of(data: bytes) -> list[bytes]:
    """Lines as both readers stream them from Cloud Storage: split on \\n, no trailing empty line."""
    parts = data.split(b"\n")
    return parts[:-1] if parts and parts[-1] == b"" else parts


@pytest.mark.parametrize("name", sorted(expected(JSONL)))
def test_jsonl_is_refused_by_preflight_and_by_vertex_on_the_same_line(name: str) -> None:
    outcome = expected(JSONL)[name]
    assert outcome["where"] == "preflight"
    data = (JSONL / name).read_bytes()
    uri = f"gs://corpus-inputs/{name}"

    preflight = Preflight()
    preflight.check_file(uri, len(data), lines_of(data))
    assert preflight.failed, f"preflight accepted {name}"
    first = preflight.violations[0]
    assert (first.line, first.rule) == (outcome["line"], outcome["rule"]), str(first)
    shown = rejection([str(v) for v in preflight.violations])
    assert f"{uri} line {outcome['line']}: " in shown and outcome["message"] in str(first), shown

    importer = ImportValidator()
    if outcome["vertex_rule"] in ("row", "job"):  # Vertex imports it, then fails the row or the job
        for number, line in enumerate(lines_of(data), 1):
            importer.check(uri, number, line)
        return
    with pytest.raises(ImportViolation) as vertex_refusal:
        for number, line in enumerate(lines_of(data), 1):
            importer.check(uri, number, line)
    assert (vertex_refusal.value.line, vertex_refusal.value.rule) == (outcome["line"], outcome["vertex_rule"]), str(
        vertex_refusal.value
    )


def test_the_lines_before_the_bad_one_are_good_input() -> None:
    """Each file is wrong in one place only: its lines before the expected one pass both checks."""
    for name, outcome in expected(JSONL).items():
        good = lines_of((JSONL / name).read_bytes())[: max(outcome["line"] - 1, 0)]
        if not good:
            continue  # an input without lines is refused itself (empty-file)
        preflight = Preflight()
        preflight.check_file("gs://corpus-inputs/x.jsonl", 0, good)
        assert not preflight.failed, (name, preflight.violations)
        importer = ImportValidator()
        for number, line in enumerate(good, 1):
            importer.check("gs://corpus-inputs/x.jsonl", number, line)
