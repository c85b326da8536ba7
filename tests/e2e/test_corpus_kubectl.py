"""The bad-input corpus through real kubectl against the local Kubernetes API: every manifest is refused
and kubectl shows the user the field and the expected words (tests/corpus/manifests/expected.yaml)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

from conftest import REPO, run_kubectl

MANIFESTS = REPO / "tests" / "corpus" / "manifests"
EXPECTED = yaml.safe_load((MANIFESTS / "expected.yaml").read_text())
# The mistakes that used to show a raw regex, a path attack and two schema errors, applied one by one
# (kubectl words a single file's refusal differently from a batch's).
SAMPLE = [
    "input-gs-one-slash.yaml",
    "input-bucket-only.yaml",
    "input-https-url.yaml",
    "bq-input-colon-form.yaml",
    "model-uppercase.yaml",
    "project-number.yaml",
    "location-uppercase.yaml",
    "output-dot-dot-segment.yaml",
    "label-value-spaces.yaml",
    "resume-max-attempts-float.yaml",
]


def _by_file(stderr: str) -> dict[str, str]:
    """kubectl's errors per manifest: each starts `Error from server (...): error when creating "<file>"`."""
    chunks = re.split(r'(?=Error from server \(\w+\): error when creating ")', stderr)
    found: dict[str, str] = {}
    for chunk in chunks:
        named = re.match(r'Error from server \(\w+\): error when creating "([^"]+)"', chunk)
        if named:
            found[pathlib.Path(named.group(1)).name] = chunk
    return found


async def test_kubectl_refuses_every_corpus_manifest_with_the_expected_words(
    kube_api: Any, kubeconfig: pathlib.Path
) -> None:
    expected = EXPECTED
    files = [str(MANIFESTS / name) for name in sorted(expected)]
    code, out, err = await run_kubectl(kubeconfig, "apply", *(arg for f in files for arg in ("-f", f)))

    assert code != 0 and out.strip() == "", f"kubectl created something: {out}"
    errors = _by_file(err)
    assert set(errors) == set(expected), f"kubectl did not refuse: {sorted(set(expected) - set(errors))}\n{err}"
    for name, outcome in expected.items():
        shown = errors[name]
        assert outcome["field"] in shown and outcome["message"] in shown, f"{name}: {shown}"
        assert "should match" not in shown, f"{name}: the user is shown a regex: {shown}"
    assert kube_api.get_object("batchinferencejobs", "default", "input-gs-one-slash") is None


@pytest.mark.parametrize("name", SAMPLE)
async def test_kubectl_apply_of_one_manifest_shows_the_readable_message(
    kube_api: Any, kubeconfig: pathlib.Path, name: str
) -> None:
    code, _, err = await run_kubectl(kubeconfig, "apply", "-f", str(MANIFESTS / name))
    outcome = EXPECTED[name]
    assert code != 0 and f'The BatchInferenceJob "{name.removesuffix(".yaml")}" is invalid: ' in err, err
    assert f"{outcome['field']}: Invalid value: " in err and outcome["message"] in err, err
    assert "should match" not in err, err
    assert kube_api.get_object("batchinferencejobs", "default", name.removesuffix(".yaml")) is None
