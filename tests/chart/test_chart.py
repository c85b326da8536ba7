"""The Helm chart, rendered and linted by the real Helm library (helm-python-sdk, no helm binary),
its objects validated against Kubernetes' schemas for two minor versions (kubernetes-validate)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import REPO

CHART = REPO / "deploy/helm/batch-inference-operator"
KUBERNETES_VERSIONS = ("1.34.0", "1.36.0")
NOT_IN_KUBERNETES_SCHEMAS = {"ServiceMonitor", "ClusterKopfPeering", "KopfPeering"}

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "replicas": {"replicaCount": 3},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}},
    "custom-project": {
        "operator": {
            "defaultProject": "ml-batch-prod",
            "defaultLocation": "europe-west4",
            "maxConcurrentJobs": 4,
            "prices": {"gemini-2.5-flash": {"input": 0.3, "output": 2.5}},
        },
        "serviceAccount": {"gcpServiceAccount": "batch-operator@ml-batch-prod.iam.gserviceaccount.com"},
    },
    "namespaced-replicas": {"watchNamespaces": ["team-a"], "replicaCount": 2},
    "extra-env-priority": {
        "extraEnv": [
            {"name": "BIJ_STALL_QUEUED_AFTER", "value": "86400"},
            {"name": "BIJ_LOCATIONS", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "locations"}}},
        ],
        "priorityClassName": "batch-operators",
    },
}


# No image is published, so every install names one (the chart refuses to render without).
IMAGE = {"image": {"repository": "registry.example.com/batch-inference-operator"}}


def with_image(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "image": {**IMAGE["image"], **values.get("image", {})}}


def render_files(values: dict[str, Any], image: bool = True) -> dict[str, str]:
    chart = helm.Chart.load(CHART)
    return chart.render(with_image(values) if image else values, name="bio", namespace="operators", is_install=True)


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        doc
        for path, text in sorted(render_files(values).items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def env_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    [deployment] = by_kind(objects, "Deployment")
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_chart_crd_is_the_generated_crd() -> None:
    assert (CHART / "crds/batchinference.dev_batchinferencejobs.yaml").read_text() == (
        REPO / "deploy/crds/batchinference.dev_batchinferencejobs.yaml"
    ).read_text()


@pytest.mark.parametrize("name", COMBINATIONS)
def test_lint_strict_reports_nothing(name: str) -> None:
    report = helm.lint(CHART, with_image(COMBINATIONS[name]), strict=True, namespace="operators")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    assert problems == [], problems


@pytest.mark.parametrize("name", COMBINATIONS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_objects_validate_against_kubernetes(name: str, version: str) -> None:
    objects = render(COMBINATIONS[name])
    assert {o["kind"] for o in objects} >= {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    for obj in objects:
        if obj["kind"] in NOT_IN_KUBERNETES_SCHEMAS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_pod_is_locked_down() -> None:
    [deployment] = by_kind(render({}), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["args"] == ["run", "--liveness=http://0.0.0.0:8080/healthz"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_values_reach_the_operator() -> None:
    objects = render(COMBINATIONS["custom-project"])
    env = env_of(objects)
    assert env["BIJ_DEFAULT_PROJECT"] == "ml-batch-prod" and env["BIJ_DEFAULT_LOCATION"] == "europe-west4"
    assert env["BIJ_MAX_CONCURRENT_JOBS"] == "4"
    assert env["BIJ_PRICES"] == '{"gemini-2.5-flash":{"input":0.3,"output":2.5}}'
    assert env["BIJ_LOG_FORMAT"] == "json" and env["BIJ_METRICS_PORT"] == "9090" and env["BIJ_NAMESPACES"] == ""
    [account] = by_kind(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "batch-operator@ml-batch-prod.iam.gserviceaccount.com"
    }


def test_namespaced_install_uses_roles() -> None:
    objects = render(COMBINATIONS["namespaced"])
    roles = by_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in by_kind(objects, "RoleBinding")) == ["team-a", "team-b"]
    [cluster_role] = by_kind(objects, "ClusterRole")
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert "batchinferencejobs" not in cluster_resources and "namespaces" in cluster_resources
    assert env_of(objects)["BIJ_NAMESPACES"] == "team-a,team-b"


def test_replicas_use_kopf_peering() -> None:
    objects = render(COMBINATIONS["replicas"])
    assert env_of(objects)["BIJ_PEERING"] == "bio-batch-inference-operator"
    assert [p["metadata"]["name"] for p in by_kind(objects, "ClusterKopfPeering")] == ["bio-batch-inference-operator"]
    [deployment] = by_kind(objects, "Deployment")
    assert "strategy" not in deployment["spec"], "standbys take over during a rolling update"
    assert "BIJ_PEERING" not in env_of(render({}))
    peering_crds = yaml.safe_load_all((CHART / "crds/kopf.dev_peerings.yaml").read_text())
    assert sorted(c["metadata"]["name"] for c in peering_crds) == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ]


def test_service_monitor_is_optional() -> None:
    assert by_kind(render({}), "ServiceMonitor") == []
    [monitor] = by_kind(render(COMBINATIONS["service-monitor"]), "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 0},
        {"operator": {"logFormat": "xml"}},
        {"serviceAccount": {"gcpServiceAccount": "not-an-email"}},
        {"colour": "blue"},
    ],
)
def test_values_schema_refuses_bad_values(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(values)


def test_dockerfile_runs_what_the_chart_and_the_liveness_test_run() -> None:
    import json as stdlib_json

    lines = (REPO / "Dockerfile").read_text().splitlines()
    entrypoint = stdlib_json.loads(next(line for line in lines if line.startswith("ENTRYPOINT")).split(" ", 1)[1])
    command = stdlib_json.loads(next(line for line in lines if line.startswith("CMD")).split(" ", 1)[1])
    assert entrypoint == ["python", "-m", "batch_inference_operator"]
    [deployment] = by_kind(render({}), "Deployment")
    assert command == deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(line.startswith("USER 10001") for line in lines), "non-root, matching the pod's runAsUser"
    assert sum(line.startswith("FROM ") for line in lines) == 2, "multi-stage"
    assert any("-c requirements/constraints.txt" in line for line in lines), "pinned dependencies"


def test_the_image_is_required_and_the_refusal_says_what_to_do() -> None:
    with pytest.raises(helm.HelmError, match=r"image\.repository is required: no image is published yet"):
        render_files({}, image=False)
    [deployment] = by_kind(render({"image": {"tag": "abc123"}}), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/batch-inference-operator:abc123"


def test_extra_environment_and_priority_class_reach_the_pod() -> None:
    objects = render(COMBINATIONS["extra-env-priority"])
    [deployment] = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "batch-operators"
    env = pod["containers"][0]["env"]
    assert env[-2:] == COMBINATIONS["extra-env-priority"]["extraEnv"], "after the chart's own, so they win"
    assert "priorityClassName" not in by_kind(render({}), "Deployment")[0]["spec"]["template"]["spec"]
    with pytest.raises(helm.HelmError):
        render({"extraEnv": [{"value": "no name"}]})


def notes(values: dict[str, Any]) -> str:
    return next(text for path, text in render_files(values).items() if path.endswith("NOTES.txt"))


def test_notes_point_at_nothing_outside_the_chart_and_wait_on_finished() -> None:
    """The notes are all a Helm user has: no repository file to apply, a job that the cluster would accept,
    and a wait that ends on failure too (Finished), then the phase."""
    import re

    from batch_inference_operator import api

    text = notes({})
    assert re.findall(r"-f (\S+)", text) == ["-"], "only stdin: the chart ships no example files"
    assert "examples/" not in text
    heredoc = text.split("<<'YAML' | kubectl apply -f -\n", 1)[1].split("\n  YAML\n", 1)[0]
    manifest = yaml.safe_load("\n".join(line.removeprefix("  ") for line in heredoc.splitlines()))
    assert manifest["kind"] == api.KIND and manifest["apiVersion"] == f"{api.GROUP}/{api.VERSION}"
    api.parse_spec(manifest["spec"])  # raises on anything the cluster would refuse
    name = manifest["metadata"]["name"]
    assert f"kubectl wait --for=condition=Finished bij/{name} --timeout=24h" in text
    assert "--for=condition=Complete" not in text
    assert f"kubectl get bij {name} -o jsonpath='{{.status.phase}}" in text
    assert "registry.example.com/batch-inference-operator:0.1.0" in text


def test_make_chart_renders_and_lints_without_a_helm_binary(tmp_path: Any) -> None:
    import subprocess
    import sys

    tool = [sys.executable, str(REPO / "tools/chart.py"), "--no-helm", "--out", str(tmp_path)]
    result = subprocess.run(tool, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    ci_files = sorted(p.stem for p in (CHART / "ci").glob("*-values.yaml"))
    assert sorted(p.stem for p in tmp_path.glob("*.yaml")) == ci_files and len(ci_files) >= 2
    assert f"all {len(ci_files)} clean" in result.stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all((tmp_path / "default-values.yaml").read_text())}
    assert {"Deployment", "ClusterRole", "ServiceAccount"} <= kinds

    bad = tmp_path / "no-image-values.yaml"
    bad.write_text("replicaCount: 1\n")
    result = subprocess.run([*tool, "--values", str(bad)], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 1 and "image.repository is required" in result.stderr


def test_make_chart_also_uses_a_helm_binary_when_one_is_found(tmp_path: Any) -> None:
    """A helm on PATH or in the control-plane cache (`make test` builds one) lints and templates as well;
    none is required, and the summary says which was used."""
    import importlib.util
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("chart_tool", REPO / "tools/chart.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    binary = tool.find_helm()
    result = subprocess.run(
        [sys.executable, str(REPO / "tools/chart.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    expected = f"the Helm library and {binary}" if binary else "the Helm library (no helm binary found; none is needed)"
    assert f"chart lint --strict with {expected}: all" in summary
