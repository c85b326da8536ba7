"""kubectl against the real kube-apiserver and against the Kubernetes API stand-in, side by side: a new
namespace, the Events table, a field selector the CRD declares (`status.phase`) and one it does not, and
a wrong apiVersion must get the same answers from both."""

from __future__ import annotations

import pathlib
import secrets
from typing import Any

import pytest
import yaml

from conftest import EXAMPLES, run_kubectl

pytestmark = pytest.mark.slow


async def answers(kubeconfig: pathlib.Path) -> dict[str, Any]:
    """What kubectl says to each command on one server (exit code and the part of the output compared)."""
    namespace = f"t-{secrets.token_hex(4)}"
    seen: dict[str, Any] = {}
    code, out, err = await run_kubectl(kubeconfig, "create", "namespace", namespace)
    seen["create namespace"] = (code, out.replace(namespace, "NS").strip())
    job = yaml.safe_load((EXAMPLES / "gcs-job.yaml").read_text())
    job["metadata"]["namespace"] = namespace
    code, _, err = await run_kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(job))
    assert code == 0, err
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "reviews-sentiment.1", "namespace": namespace},
        "type": "Warning",
        "reason": "InvalidInput",
        "message": "input rejected by preflight",
        "involvedObject": {"kind": "BatchInferenceJob", "name": "reviews-sentiment", "namespace": namespace},
    }
    code, _, err = await run_kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(event))
    assert code == 0, err
    code, out, _ = await run_kubectl(kubeconfig, "get", "events", "-n", namespace)
    seen["events header"] = (code, out.splitlines()[0].split() if out else [])
    code, out, _ = await run_kubectl(kubeconfig, "get", "events", "-n", namespace, "-o", "wide")
    seen["events wide header"] = (code, out.splitlines()[0].split() if out else [])
    code, out, _ = await run_kubectl(
        kubeconfig, "get", "bij", "-n", namespace, "--field-selector", "status.phase=Failed", "-o", "name"
    )
    seen["declared field selector"] = (code, out.strip())
    code, _, err = await run_kubectl(kubeconfig, "get", "bij", "-n", namespace, "--field-selector", "spec.model=x")
    seen["undeclared field selector"] = (code != 0, "field label not supported: spec.model" in err)
    wrong = (EXAMPLES / "gcs-job.yaml").read_text().replace("batchinference.dev/v1alpha1", "batchinference.dev/v1")
    code, _, err = await run_kubectl(kubeconfig, "apply", "-f", "-", stdin=wrong)
    seen["wrong apiVersion"] = (
        code != 0,
        'no matches for kind "BatchInferenceJob" in version "batchinference.dev/v1"' in err,
    )
    return seen


async def test_the_stand_in_answers_kubectl_as_the_real_server_does(
    admin_kubeconfig: pathlib.Path, kube_api: Any, kubeconfig: pathlib.Path
) -> None:
    real = await answers(admin_kubeconfig)
    assert real["undeclared field selector"] == (True, True) and real["wrong apiVersion"] == (True, True), real
    assert real["events header"] == (0, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]), real
    assert await answers(kubeconfig) == real
