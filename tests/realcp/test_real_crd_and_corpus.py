"""What only a real API server decides: the generated CRD is accepted (structural schema, CEL cost
budget), every example is accepted, every manifest of the bad-input corpus is refused, and the
Kubernetes API stand-in answers each of them exactly as the real server does."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import kubernetes
import pytest
import yaml

from conftest import EXAMPLES, REPO, run_kubectl
from local_stack.control_plane.cluster import CRD_NAME

pytestmark = pytest.mark.slow

MANIFESTS = REPO / "tests" / "corpus" / "manifests"
EXPECTED = yaml.safe_load((MANIFESTS / "expected.yaml").read_text())


def _refusals(stderr: str) -> dict[str, str]:
    """kubectl's error per manifest file, keyed by file name."""
    found: dict[str, str] = {}
    for chunk in re.split(r"(?=Error from server)", stderr):
        named = re.search(r'error when creating "([^"]+)"', chunk)
        if named:
            found[pathlib.Path(named.group(1)).name] = chunk.strip()
    return found


def test_the_generated_crd_is_established_with_every_version_served(kube_client: Any) -> None:
    crd = kubernetes.client.ApiextensionsV1Api(kube_client).read_custom_resource_definition(CRD_NAME)
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True", conditions
    assert conditions.get("NonStructuralSchema") in (None, "False"), conditions
    assert [v.name for v in crd.spec.versions if v.served] == ["v1alpha1"]


async def test_the_committed_crd_applies_server_side_without_warnings(admin_kubeconfig: pathlib.Path) -> None:
    crd_file = REPO / "deploy" / "crds" / "batchinference.dev_batchinferencejobs.yaml"
    code, _out, err = await run_kubectl(
        admin_kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd_file)
    )
    assert code == 0, err
    assert "Warning" not in err, err


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
async def test_every_example_is_accepted(admin_kubeconfig: pathlib.Path, example: str) -> None:
    code, out, err = await run_kubectl(admin_kubeconfig, "apply", "--dry-run=server", "-f", str(EXAMPLES / example))
    assert code == 0, err
    assert "created (server dry run)" in out and "Warning" not in err, (out, err)


async def test_every_corpus_manifest_is_refused_by_the_real_server_as_by_the_stand_in(
    admin_kubeconfig: pathlib.Path, kubeconfig: pathlib.Path
) -> None:
    files = [arg for name in sorted(EXPECTED) for arg in ("-f", str(MANIFESTS / name))]
    real_code, real_out, real_err = await run_kubectl(admin_kubeconfig, "apply", "-n", "default", *files)
    _local_code, _local_out, local_err = await run_kubectl(kubeconfig, "apply", "-n", "default", *files)

    assert real_code != 0 and real_out.strip() == "", f"the real server accepted: {real_out}"
    real, local = _refusals(real_err), _refusals(local_err)
    assert set(real) == set(EXPECTED), sorted(set(EXPECTED) - set(real))
    unexpected = {
        name: real[name]
        for name, outcome in EXPECTED.items()
        if outcome["field"] not in real[name] or outcome["message"] not in real[name]
    }
    assert not unexpected, "\n".join(f"{n}: {text}" for n, text in sorted(unexpected.items()))
    differing = {name: (real[name], local.get(name)) for name in real if real[name] != local.get(name)}
    assert not differing, "\n\n".join(f"{n}\n real:  {r}\n local: {s}" for n, (r, s) in sorted(differing.items()))
