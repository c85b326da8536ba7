"""The Argo CD health check and actions, run by a real Lua (lupa) against the fixtures Argo's own
test harness reads (health_test.yaml, actions/action_test.yaml)."""

from __future__ import annotations

import pathlib
import re
import typing
from typing import Any

import lupa
import pytest
import yaml

from batch_inference_operator.api import Phase
from conftest import REPO

HERE = REPO / "deploy/argocd/resource_customizations/batchinference.dev/BatchInferenceJob"


def to_lua(runtime: lupa.LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def from_lua(value: Any) -> Any:
    if lupa.lua_type(value) == "table":
        keys = list(value.keys())
        if keys and all(isinstance(k, int) for k in keys):
            return [from_lua(value[k]) for k in sorted(keys)]
        return {k: from_lua(v) for k, v in value.items()}
    return value


def run(script: pathlib.Path, obj: dict[str, Any]) -> Any:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    return from_lua(runtime.execute(script.read_text()))


HEALTH = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize("case", HEALTH, ids=[c["inputPath"] for c in HEALTH])
def test_health(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HERE / case["inputPath"]).read_text())
    assert run(HERE / "health.lua", obj) == case["healthStatus"]


def test_every_phase_has_a_fixture() -> None:
    phases = {yaml.safe_load((HERE / c["inputPath"]).read_text()).get("status", {}).get("phase") for c in HEALTH}
    assert phases >= {None, *typing.get_args(Phase)}, "every phase of the API has a health fixture"


ACTIONS = yaml.safe_load((HERE / "actions/action_test.yaml").read_text())


@pytest.mark.parametrize("case", ACTIONS["discoveryTests"], ids=lambda c: c["inputPath"])
def test_action_discovery(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HERE / "actions" / case["inputPath"]).read_text())
    offered = run(HERE / "actions/discovery.lua", obj)
    assert [{"name": name, "disabled": offered[name]["disabled"]} for name in sorted(offered)] == sorted(
        case["result"], key=lambda r: r["name"]
    )


@pytest.mark.parametrize("case", ACTIONS["actionTests"], ids=lambda c: c["action"])
def test_actions_patch_spec_suspend(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HERE / "actions" / case["inputPath"]).read_text())
    expected = yaml.safe_load((HERE / "actions" / case["expectedOutputPath"]).read_text())
    assert run(HERE / "actions" / case["action"] / "action.lua", obj) == expected


def test_the_ready_to_apply_configmap_carries_every_script_in_argo_cds_format() -> None:
    """deploy/argocd/argocd-cm.yaml as Argo CD reads it: the health key holds health.lua, the actions key
    holds YAML with discovery.lua and one definition per action folder, each the file's text."""
    config_map = yaml.safe_load((REPO / "deploy/argocd/argocd-cm.yaml").read_text())
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    data = config_map["data"]
    assert set(data) == {
        "resource.customizations.health.batchinference.dev_BatchInferenceJob",
        "resource.customizations.actions.batchinference.dev_BatchInferenceJob",
    }
    assert (
        data["resource.customizations.health.batchinference.dev_BatchInferenceJob"] == (HERE / "health.lua").read_text()
    )
    actions = yaml.safe_load(data["resource.customizations.actions.batchinference.dev_BatchInferenceJob"])
    assert actions["discovery.lua"] == (HERE / "actions/discovery.lua").read_text()
    folders = sorted(p.parent.name for p in (HERE / "actions").glob("*/action.lua"))
    assert [d["name"] for d in actions["definitions"]] == folders and {"suspend", "resume"} <= set(folders)
    for definition in actions["definitions"]:
        assert definition["action.lua"] == (HERE / "actions" / definition["name"] / "action.lua").read_text()


def test_the_rerun_action_sets_a_new_annotation_value_and_nothing_else() -> None:
    """The value is the click's time, so Argo's fixture harness cannot hold it: checked here instead."""
    obj = yaml.safe_load((HERE / "actions/testdata/succeeded.yaml").read_text())
    script = HERE / "actions/rerun/action.lua"
    first = run(script, obj)
    value = first["metadata"]["annotations"]["batchinference.dev/rerun"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), value
    del first["metadata"]["annotations"]
    assert first == obj, "only the annotation changes"
    obj["metadata"]["annotations"] = {"batchinference.dev/rerun": value, "other": "kept"}
    again = run(script, obj)["metadata"]["annotations"]
    assert again["other"] == "kept" and again["batchinference.dev/rerun"] != value, "a second click is new too"
