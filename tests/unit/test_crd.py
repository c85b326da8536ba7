"""The CRD is generated from the models; the committed file must be exactly that output."""

from __future__ import annotations

import re
from typing import Any

import yaml

from batch_inference_operator import api, crd
from conftest import REPO


def test_committed_crd_matches_the_models() -> None:
    committed = (REPO / crd.CRD_FILE).read_text()
    assert committed == crd.render_crd(), (
        "deploy/crds/ drifted from the api package: run `make crds` and commit the result"
    )


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, node)]
    for name, child in node.get("properties", {}).items():
        nodes += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        nodes += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        nodes += _walk(node["additionalProperties"], f"{path}{{}}")
    return nodes


def test_schema_is_structural() -> None:
    """What the apiserver refuses: $ref, typed anyOf/oneOf, untyped nodes, properties with additionalProperties."""
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"} & node.keys()
        assert not forbidden, f"{path} carries {forbidden}"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("exclusiveMinimum") in (None, True, False), f"{path}: OpenAPI v3.0 exclusiveMinimum is boolean"


def test_crd_shape() -> None:
    generated = crd.build_crd()
    spec = generated["spec"]
    assert generated["metadata"]["name"] == "batchinferencejobs.batchinference.dev"
    assert spec["names"]["shortNames"] == ["bij"] and spec["names"]["categories"] == ["batchinference"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        "Phase", "Model", "Succeeded", "Failed", "Attempts", "Shards", "Cache", "Reason", "Age", "Job", "Output",
        "Message",
    ]  # fmt: skip
    assert all(columns[name].get("priority", 0) == 0 for name in ["Phase", "Model", "Reason", "Age"])
    assert all(columns[name]["priority"] == 1 for name in ["Job", "Output", "Message"])
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec_schema["x-kubernetes-validations"]
    immutable = {rule["fieldPath"] for rule in rules if "immutable" in rule["message"]}
    assert immutable == {f".{name}" for name in (*api.JOB_DEFINING_FIELDS, "sharding")}
    needs_preflight = {rule["fieldPath"] for rule in rules if "needs spec.preflight: Enabled" in rule["message"]}
    assert needs_preflight == {".maxEstimatedCostUSD", ".sharding"}


def test_printer_columns_point_at_real_fields() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    paths = {path for path, _ in _walk(schema)}
    for column in crd.PRINTER_COLUMNS:
        if column["jsonPath"].startswith(".metadata"):
            continue
        # A filter step (`conditions[?(@.type=="Ready")]`) selects an item of the list: its fields are the item's.
        path = re.sub(r"\[\?\(@\.[a-z]+==\"[A-Za-z]+\"\)\]", "[]", column["jsonPath"])
        assert path in paths, column


def test_rendered_file_is_yaml_of_the_crd() -> None:
    assert yaml.safe_load(crd.render_crd()) == crd.build_crd()


def test_selectable_fields_are_scalar_leaves_a_real_apiserver_accepts() -> None:
    """A real apiserver refuses a selectableFields path that is missing or not a string, integer or boolean,
    and more than 8 of them; `status.phase` is declared so `--field-selector status.phase=Failed` works there."""
    version = crd.build_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    nodes = dict(_walk(schema))
    declared = [field["jsonPath"] for field in version["selectableFields"]]
    assert ".status.phase" in declared and len(declared) <= 8
    for path in declared:
        assert nodes[path]["type"] in ("string", "integer", "boolean"), path
