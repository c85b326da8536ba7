"""Every example is accepted and every malformed manifest refused, by both the pydantic models and the
generated CRD (jsonschema for the OpenAPI schema, cel-python for the CEL rules), each naming the field."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from batch_inference_operator import api, crd
from conftest import example_manifests
from local_stack.kube.schema import CrdSchema

SCHEMA = CrdSchema.from_crd(crd.build_crd())
Mutation = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize(("name", "manifest"), example_manifests(), ids=[n for n, _ in example_manifests()])
def test_examples_are_accepted(name: str, manifest: dict[str, Any]) -> None:
    stored, unknown, causes = SCHEMA.admit(manifest)
    assert unknown == [] and causes == []
    spec = api.parse_spec(stored["spec"])
    assert spec.model == manifest["spec"]["model"]
    # The CRD's defaults and the models' defaults agree.
    assert stored["spec"]["resume"] == api.ResumeSpec.model_validate(stored["spec"]["resume"]).to_wire()
    assert stored["spec"]["deletionPolicy"] == spec.deletion_policy


def test_there_are_three_examples() -> None:
    inputs = {next(iter(doc["spec"]["input"])) for _, doc in example_manifests()}
    assert len(example_manifests()) >= 3 and inputs == {"gcs", "bigquery"}


def _set(path: str, value: Any) -> Mutation:
    def mutate(manifest: dict[str, Any]) -> None:
        node = manifest
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(manifest: dict[str, Any]) -> None:
        node = manifest
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


# (case id, mutation, field that both validators must name)
MALFORMED: list[tuple[str, Mutation, str]] = [
    ("both-inputs", _set("spec.input.bigquery", {"table": "bq://demo-project.ds.t"}), "spec.input"),
    ("neither-input", _set("spec.input", {}), "spec.input"),
    ("s3-input-uri", _set("spec.input.gcs.uris", ["s3://bucket/requests.jsonl"]), "spec.input.gcs.uris[0]"),
    ("gcs-uri-without-object", _set("spec.input.gcs.uris", ["gs://bucket"]), "spec.input.gcs.uris[0]"),
    ("empty-uri-list", _set("spec.input.gcs.uris", []), "spec.input.gcs.uris"),
    (
        "bq-input-without-table",
        _set("spec.input", {"bigquery": {"table": "bq://demo-project.ds"}}),
        "spec.input.bigquery.table",
    ),
    ("both-outputs", _set("spec.output.bigquery", {"dataset": "bq://demo-project.ds"}), "spec.output"),
    ("neither-output", _set("spec.output", {}), "spec.output"),
    (
        "bq-output-dataset-and-table",
        _set("spec.output", {"bigquery": {"dataset": "bq://demo-project.ds", "table": "bq://demo-project.ds.t"}}),
        "spec.output.bigquery",
    ),
    ("bad-output-prefix", _set("spec.output.gcs.uriPrefix", "gs:/bucket/out"), "spec.output.gcs.uriPrefix"),
    ("bad-model", _set("spec.model", "Gemini 2.5 Flash"), "spec.model"),
    ("model-in-wrong-namespace", _set("spec.model", "publishers/openai/models/gpt-4o"), "spec.model"),
    ("missing-model", _drop("spec.model"), "spec.model"),
    ("bad-project", _set("spec.project", "P"), "spec.project"),
    ("bad-location", _set("spec.location", "US Central"), "spec.location"),
    ("bad-label-key", _set("spec.labels", {"Team": "search"}), "spec.labels"),
    ("reserved-label-key", _set("spec.labels", {"bij-uid": "x"}), "spec.labels"),
    ("bad-label-value", _set("spec.labels", {"team": "Search Team"}), "spec.labels[team]"),
    ("negative-max-attempts", _set("spec.resume", {"maxAttempts": -1}), "spec.resume.maxAttempts"),
    ("too-many-attempts", _set("spec.resume", {"maxAttempts": 11}), "spec.resume.maxAttempts"),
    ("negative-backoff", _set("spec.resume", {"backoffSeconds": -5}), "spec.resume.backoffSeconds"),
    ("bad-retry-enum", _set("spec.resume", {"retryFailedRequests": "Sometimes"}), "spec.resume.retryFailedRequests"),
    ("bad-deletion-policy", _set("spec.deletionPolicy", "Delete"), "spec.deletionPolicy"),
    ("bad-preflight", _set("spec.preflight", "On"), "spec.preflight"),
    ("suspend-as-string", _set("spec.suspend", "yes"), "spec.suspend"),
    ("negative-ttl", _set("spec.ttlSecondsAfterFinished", -1), "spec.ttlSecondsAfterFinished"),
    ("unknown-field", _set("spec.priority", "high"), "spec.priority"),
    ("unknown-nested-field", _set("spec.input.gcs.format", "jsonl"), "spec.input.gcs.format"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), MALFORMED, ids=[c for c, _, _ in MALFORMED])
def test_malformed_manifest_is_refused_by_both(
    gcs_manifest: dict[str, Any], case: str, mutate: Mutation, field: str
) -> None:
    mutate(gcs_manifest)

    with pytest.raises(ValueError) as refused:
        api.parse_spec(gcs_manifest["spec"])
    assert field in str(refused.value), f"pydantic message does not name {field}: {refused.value}"

    _stored, unknown, causes = SCHEMA.admit(gcs_manifest)
    rendered = unknown + [cause.render() for cause in causes]
    assert rendered, f"the CRD accepted {case}"
    assert any(line.startswith(field) for line in rendered), f"CRD messages do not name {field}: {rendered}"


UPDATES: list[tuple[str, Mutation, str]] = [
    ("edit-model", _set("spec.model", "gemini-2.5-pro"), "spec.model"),
    ("edit-input", _set("spec.input.gcs.uris", ["gs://demo-batch-inputs/other.jsonl"]), "spec.input"),
    ("edit-output", _set("spec.output.gcs.uriPrefix", "gs://demo-batch-outputs/elsewhere/"), "spec.output"),
    ("edit-project", _set("spec.project", "other-project"), "spec.project"),
    ("drop-location", _drop("spec.location"), "spec.location"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), UPDATES, ids=[c for c, _, _ in UPDATES])
def test_job_defining_fields_are_immutable(
    gcs_manifest: dict[str, Any], case: str, mutate: Mutation, field: str
) -> None:
    old, _, _ = SCHEMA.admit(gcs_manifest)
    new = copy.deepcopy(gcs_manifest)
    mutate(new)

    assert SCHEMA.admit(new)[2] == [], "the edit alone is a valid manifest; only the transition is refused"
    causes = SCHEMA.admit(new, old)[2]
    assert [c.field for c in causes] == [field]
    assert causes[0].reason == "FieldValueForbidden" and "immutable" in causes[0].message


@pytest.mark.parametrize(
    "mutate",
    [
        _set("spec.labels", {"team": "ranking"}),
        _set("spec.resume", {"maxAttempts": 5}),
        _set("spec.deletionPolicy", "Abandon"),
        _set("spec.suspend", True),
        _set("spec.ttlSecondsAfterFinished", 60),
    ],
)
def test_lifecycle_fields_stay_mutable(gcs_manifest: dict[str, Any], mutate: Mutation) -> None:
    old, _, _ = SCHEMA.admit(gcs_manifest)
    new = copy.deepcopy(gcs_manifest)
    mutate(new)
    assert SCHEMA.admit(new, old)[2] == []


def test_unknown_fields_are_pruned_when_not_strict(gcs_manifest: dict[str, Any]) -> None:
    gcs_manifest["spec"]["priority"] = "high"
    stored, unknown, causes = SCHEMA.admit(gcs_manifest, strict=False)
    assert unknown == ["spec.priority"] and causes == []
    assert "priority" not in stored["spec"]


def test_model_forms() -> None:
    base = {"input": {"gcs": {"uris": ["gs://bkt/in.jsonl"]}}, "output": {"gcs": {"uriPrefix": "gs://bkt/out/"}}}
    for model in [
        "gemini-2.5-flash",
        "gemini-2.0-flash-001",
        "publishers/google/models/gemini-2.5-pro",
        "projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-flash",
        "projects/my-project/locations/us-central1/models/1234567890",
        "projects/my-project/locations/us-central1/models/1234567890@2",
    ]:
        assert api.parse_spec({**base, "model": model}).model == model
        assert SCHEMA.validate({"spec": {**base, "model": model}}) == []


def test_a_null_optional_field_is_dropped_as_the_apiserver_does(gcs_manifest: dict[str, Any]) -> None:
    """`project:` left empty in YAML is a null; the apiserver prunes nulls of non-nullable fields before
    defaulting, so the manifest is accepted as if the field were absent (and a null with a default gets it)."""
    gcs_manifest["spec"]["project"] = None
    gcs_manifest["spec"]["resume"] = {"backoffSeconds": None}
    stored, unknown, causes = SCHEMA.admit(gcs_manifest)
    assert unknown == [] and causes == []
    assert "project" not in stored["spec"] and stored["spec"]["resume"]["backoffSeconds"] == 60
    assert api.parse_spec(stored["spec"]).project is None


def test_a_whole_float_for_an_integer_is_stored_as_an_integer(gcs_manifest: dict[str, Any]) -> None:
    """JSON 3.0 passes the apiserver's integer check and is read back as 3; 2.5 is refused."""
    gcs_manifest["spec"]["resume"] = {"maxAttempts": 3.0}
    stored, _, causes = SCHEMA.admit(gcs_manifest)
    assert causes == [] and stored["spec"]["resume"]["maxAttempts"] == 3
    assert type(stored["spec"]["resume"]["maxAttempts"]) is int
    assert api.parse_spec(stored["spec"]).resume.max_attempts == 3
    gcs_manifest["spec"]["resume"] = {"maxAttempts": 2.5}
    # as a real server says it: the type, the format, then that the CEL rules were not run
    assert [c.field for c in SCHEMA.admit(gcs_manifest)[2]] == ["spec.resume.maxAttempts", "<nil>", "<nil>"]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"type": "string", "pattern": "^[a-z]{1,1024}$"}, "must be a valid regular expression"),
        (
            {"type": "string", "maxLength": 9, "x-kubernetes-validations": [{"rule": "self.matches(r'a{2000}')"}]},
            "must be a valid regular expression",
        ),
        ({"type": "string", "x-kubernetes-validations": [{"rule": "self.("}]}, "compilation failed"),
    ],
)
def test_a_crd_the_apiserver_would_refuse_is_refused(node: dict[str, Any], expected: str) -> None:
    """Go's RE2 refuses a repeat over 1000 (the apiserver compiles patterns and CEL regexes when the CRD
    is created); the stand-in refuses such a CRD too instead of judging values with Python's `re`."""
    with pytest.raises(ValueError, match=expected):
        CrdSchema({"type": "object", "properties": {"field": node}})


@pytest.mark.parametrize(
    ("path", "value"),
    [("spec.display_name", "x"), ("spec.output.gcs.uri_prefix", "gs://bkt/out/"), ("spec.resume.max_attempts", 2)],
)
def test_python_field_names_are_unknown_fields_as_on_the_cluster(
    gcs_manifest: dict[str, Any], path: str, value: Any
) -> None:
    """The models accept their Python names when built in code; a manifest must use the wire names."""
    _set(path, value)(gcs_manifest)
    with pytest.raises(ValueError, match=rf"{re.escape(path)}: unknown field"):
        api.parse_spec(gcs_manifest["spec"])
    assert SCHEMA.admit(gcs_manifest)[1] == [path]
