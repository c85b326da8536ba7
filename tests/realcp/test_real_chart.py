"""The chart for real: the helm binary (built from helm.sh/helm/v3) lints it strictly, its rendered
objects pass the real server's dry run, it installs and uninstalls, and its ValidatingAdmissionPolicy
refuses jobs outside their Namespace's allow-lists at `kubectl apply`, in the operator's words."""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess
from typing import Any

import kubernetes
import pytest
import yaml
from test_chart import CHART, IMAGE

from batch_inference_operator.api import meta
from conftest import job_manifest, run_kubectl

pytestmark = pytest.mark.slow


def helm(control_plane: Any, tmp_path: pathlib.Path, *args: str) -> tuple[int, str, str]:
    """The helm binary built with the control plane, with its own homes and the admin kubeconfig."""
    home = tmp_path / "helm-home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(control_plane.kubeconfig()),
    }
    done = subprocess.run(
        [str(control_plane.binaries / "helm"), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def installed(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The chart installed with helm into the real server (no Pods run: there is no scheduler)."""
    tmp = tmp_path_factory.mktemp("helm")
    release, namespace = f"bio-{secrets.token_hex(3)}", f"operators-{secrets.token_hex(3)}"
    code, out, err = helm(
        control_plane,
        tmp,
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "--skip-crds",  # the tier's fixture installed the same CRD already
        "--set",
        "operator.defaultProject=default-project",
        "--set",
        f"image.repository={IMAGE['image']['repository']}",
    )
    assert code == 0, err
    yield release, namespace, out
    code, _, err = helm(control_plane, tmp, "uninstall", release, "-n", namespace, "--wait")
    assert code == 0, err


def test_helm_lint_strict_passes(control_plane: Any, tmp_path: pathlib.Path) -> None:
    code, out, err = helm(
        control_plane, tmp_path, "lint", "--strict", str(CHART), "-f", str(CHART / "ci" / "default-values.yaml")
    )
    assert code == 0 and "0 chart(s) failed" in out, out + err


async def test_rendered_chart_passes_the_real_servers_dry_run(
    control_plane: Any, admin_kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    code, rendered, err = helm(
        control_plane,
        tmp_path,
        "template",
        "bio",
        str(CHART),
        "-n",
        "default",
        "-f",
        str(CHART / "ci" / "default-values.yaml"),
    )
    assert code == 0, err
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"Deployment", "ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds
    code, _out, err = await run_kubectl(admin_kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=rendered)
    assert code == 0, err
    assert "Warning" not in err, err


async def test_helm_install_creates_every_object(installed: Any, kube_client: Any) -> None:
    release, namespace, notes = installed
    deployments = kubernetes.client.AppsV1Api(kube_client).list_namespaced_deployment(namespace).items
    assert [d.metadata.name for d in deployments] == [f"{release}-batch-inference-operator"]
    policies = kubernetes.client.AdmissionregistrationV1Api(kube_client).list_validating_admission_policy().items
    assert f"{release}-batch-inference-operator-namespace-limits" in {p.metadata.name for p in policies}
    assert "STATUS: deployed" in notes


def limited_namespace(kube_client: Any, annotations: dict[str, str]) -> str:
    name = f"team-{secrets.token_hex(3)}"
    kubernetes.client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": name, "annotations": annotations}})
    return name


async def apply_job(kubeconfig: pathlib.Path, manifest: dict[str, Any]) -> tuple[int, str]:
    code, _, err = await run_kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    return code, err


POLICY = {
    meta.GCS_POLICY_ANNOTATION: "gs://team-data/in, gs://team-data/out/",
    meta.BQ_POLICY_ANNOTATION: "bq://team-proj.reviews",
    meta.PROJECT_POLICY_ANNOTATION: "team-proj",
}


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({}, None),
        (
            {"input": {"gcs": {"uris": ["gs://team-data/in/a.jsonl", "gs://other/b.jsonl"]}}},
            "gs://other/b.jsonl is outside the namespace's allowed Cloud Storage prefixes (gs://team-data/in, gs://team-data/out/)",
        ),
        (
            {"input": {"gcs": {"uris": ["gs://team-data/in-other/a.jsonl"]}}},
            "gs://team-data/in-other/a.jsonl is outside",
        ),
        ({"output": {"gcs": {"uriPrefix": "gs://elsewhere/out/"}}}, "gs://elsewhere/out/ is outside"),
        ({"project": "other-proj"}, "project other-proj is not among the namespace's allowed projects (team-proj)"),
        ({"input": {"bigquery": {"table": "bq://team-proj.reviews.t1"}}}, None),
        (
            {"input": {"bigquery": {"table": "bq://team-proj.secret.t1"}}},
            "bq://team-proj.secret.t1 is outside the namespace's allowed BigQuery datasets (bq://team-proj.reviews)",
        ),
        ({"output": {"bigquery": {"dataset": "bq://team-proj.other"}}}, "bq://team-proj.other is outside"),
    ],
)
async def test_the_admission_policy_enforces_the_namespaces_allow_lists(
    installed: Any, kube_client: Any, admin_kubeconfig: pathlib.Path, change: dict[str, Any], refusal: str | None
) -> None:
    namespace = limited_namespace(kube_client, POLICY)
    manifest = job_manifest("job", "gs://team-data/in/a.jsonl", "gs://team-data/out/run1/", namespace=namespace)
    manifest["spec"].update({"project": "team-proj", **change})
    code, err = await apply_job(admin_kubeconfig, manifest)
    if refusal is None:
        assert code == 0, err
    else:
        assert code != 0 and refusal in err, err
        assert "ValidatingAdmissionPolicy" in err, err


async def test_the_policy_uses_the_namespace_project_and_the_charts_default(
    installed: Any, kube_client: Any, admin_kubeconfig: pathlib.Path
) -> None:
    namespace = limited_namespace(kube_client, {meta.PROJECT_POLICY_ANNOTATION: "team-proj"})
    manifest = job_manifest("no-project", "gs://team-a/in.jsonl", "gs://team-a/out/", namespace=namespace)
    del manifest["spec"]["project"]
    code, err = await apply_job(admin_kubeconfig, manifest)
    assert code != 0 and "project default-project is not among" in err, err
    annotated = limited_namespace(
        kube_client, {meta.PROJECT_POLICY_ANNOTATION: "team-proj", meta.PROJECT_ANNOTATION: "team-proj"}
    )
    manifest["metadata"]["namespace"] = annotated
    code, err = await apply_job(admin_kubeconfig, manifest)
    assert code == 0, err


async def test_tightening_a_namespace_never_blocks_updates_that_keep_the_spec(
    installed: Any, kube_client: Any, admin_kubeconfig: pathlib.Path
) -> None:
    namespace = limited_namespace(kube_client, {})
    manifest = job_manifest("kept", "gs://team-a/in.jsonl", "gs://team-a/out/", namespace=namespace)
    code, err = await apply_job(admin_kubeconfig, manifest)
    assert code == 0, err
    kubernetes.client.CoreV1Api(kube_client).patch_namespace(
        namespace, {"metadata": {"annotations": {meta.GCS_POLICY_ANNOTATION: "gs://team-b"}}}
    )
    # what the operator does to an existing job: finalizers and annotations, never the spec
    code, _, err = await run_kubectl(
        admin_kubeconfig, "-n", namespace, "patch", "bij", "kept", "--type=merge", "-p",
        '{"metadata": {"finalizers": ["batchinference.dev/finalizer"]}}',
    )  # fmt: skip
    assert code == 0, err
    code, _, err = await run_kubectl(
        admin_kubeconfig, "-n", namespace, "patch", "bij", "kept", "--type=merge", "-p", '{"spec": {"suspend": true}}'
    )
    assert code != 0 and "gs://team-a/in.jsonl, gs://team-a/out/ are outside" in err, err
