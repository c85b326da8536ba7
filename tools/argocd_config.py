"""`make docs`: write deploy/argocd/argocd-cm.yaml, the `argocd-cm` entries for BatchInferenceJob (health
check and every action under `actions/`), from the Lua files that Argo CD's tests and ours run.

`--check` writes nothing and exits 1 when the committed file differs from the Lua files.
"""

from __future__ import annotations

import sys

import yaml

import generated
from generated import REPO

ARGOCD = REPO / "deploy/argocd"
SOURCE = ARGOCD / "resource_customizations/batchinference.dev/BatchInferenceJob"
TARGET = ARGOCD / "argocd-cm.yaml"
KEY = "batchinference.dev_BatchInferenceJob"

HEADER = """\
# Generated from resource_customizations/ by `make docs` (tools/argocd_config.py); do not edit.
# The BatchInferenceJob health check and actions for Argo CD. Apply only these keys, leaving the rest
# of argocd-cm alone:
#   kubectl apply --server-side --field-manager=batch-inference-operator -f deploy/argocd/argocd-cm.yaml
# With the argo-cd Helm chart, put the two data keys under `configs.cm` in its values instead.
"""


class _Literal(str):
    """A string dumped as a YAML literal block, so the Lua stays readable."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


yaml.SafeDumper.add_representer(_Literal, _literal)


def render() -> str:
    actions = {
        "discovery.lua": _Literal((SOURCE / "actions/discovery.lua").read_text()),
        "definitions": [
            {"name": path.parent.name, "action.lua": _Literal(path.read_text())}
            for path in sorted((SOURCE / "actions").glob("*/action.lua"))
        ],
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
        },
        "data": {
            f"resource.customizations.health.{KEY}": _Literal((SOURCE / "health.lua").read_text()),
            f"resource.customizations.actions.{KEY}": _Literal(yaml.safe_dump(actions, sort_keys=False, width=120)),
        },
    }
    return HEADER + yaml.safe_dump(config_map, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.exit(generated.main("tools/argocd_config.py", __doc__, TARGET, render))
