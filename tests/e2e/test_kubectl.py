"""kubectl against the local Kubernetes API: what a user types, refused or accepted as on a real cluster."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from typing import Any

import pytest
import yaml

from conftest import EXAMPLES, eventually, example_manifests, kubectl_binary, run_kubectl


@pytest.fixture
def kubectl(kubeconfig: pathlib.Path) -> Any:
    """kubectl against the test's server; fails the test on a non-zero exit unless check=False."""

    async def run(*args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        code, out, err = await run_kubectl(kubeconfig, *args, stdin=stdin)
        if check and code != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({code}): {err}")
        return code, out, err

    run.binary = kubectl_binary()  # type: ignore[attr-defined]
    return run


async def test_apply_get_patch_watch_delete(kube_api: Any, kubectl: Any) -> None:
    _, out, _ = await kubectl("apply", "-f", str(EXAMPLES))
    assert out.count("created") == len(example_manifests())

    _, table, _ = await kubectl("get", "bij")
    header = table.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "MODEL", "SUCCEEDED", "FAILED", "ATTEMPTS", "SHARDS", "CACHE", "REASON", "AGE"]
    _, wide, _ = await kubectl("get", "batchinferencejobs", "-o", "wide")
    assert wide.splitlines()[0].split()[-3:] == ["JOB", "OUTPUT", "MESSAGE"]

    _, out, _ = await kubectl("get", "bij", "reviews-sentiment", "-o", "yaml")
    stored = yaml.safe_load(out)
    assert stored["spec"]["deletionPolicy"] == "Cancel" and stored["metadata"]["uid"]

    _, out, _ = await kubectl("apply", "-f", str(EXAMPLES / "gcs-job.yaml"))
    assert "unchanged" in out

    code, _, _ = await kubectl(
        "patch",
        "bij",
        "reviews-sentiment",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running","attempt":1,"completionStats":{"successful":3}}}',
    )
    assert code == 0
    _, out, _ = await kubectl("get", "bij", "reviews-sentiment", "-o", "jsonpath={.status.phase} {.spec.model}")
    assert out == "Running gemini-2.5-flash"

    _, out, _ = await kubectl("delete", "-f", str(EXAMPLES))
    assert out.count("deleted") == len(example_manifests())
    _, out, _ = await kubectl("get", "bij", "-o", "name")
    assert out.strip() == ""


async def test_get_watch_streams_changes(kube_api: Any, kubectl: Any, kubeconfig: pathlib.Path) -> None:
    await kubectl("apply", "-f", str(EXAMPLES / "gcs-job.yaml"))
    watcher = await asyncio.create_subprocess_exec(
        kubectl.binary,
        "--kubeconfig",
        str(kubeconfig),
        "get",
        "bij",
        "-w",
        "--request-timeout=30s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []

    async def read() -> None:
        assert watcher.stdout is not None
        while line := await watcher.stdout.readline():
            lines.append(line.decode())

    reader = asyncio.create_task(read())
    try:
        await eventually(lambda: any("reviews-sentiment" in line for line in lines), message="initial row")
        for phase in ("Running", "Succeeded"):
            await kubectl(
                "patch",
                "bij",
                "reviews-sentiment",
                "--subresource=status",
                "--type=merge",
                "-p",
                f'{{"status":{{"phase":"{phase}"}}}}',
            )
        await eventually(lambda: any("Succeeded" in line for line in lines), message="watched the change")
        assert any("Running" in line for line in lines)
    finally:
        watcher.terminate()
        await watcher.wait()
        reader.cancel()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["spec"]["input"]["gcs"].update(uris=["s3://bucket/requests.jsonl"]), "spec.input.gcs.uris[0]"),
        (lambda m: m["spec"].update(model="Gemini Flash"), "spec.model"),
        (lambda m: m["spec"].update(deletionPolicy="Delete"), "spec.deletionPolicy"),
        (lambda m: m["spec"]["input"].update(bigquery={"table": "bq://demo-project.d.t"}), "spec.input"),
        (lambda m: m["spec"].update(colour="blue"), "spec.colour"),
    ],
)
async def test_invalid_manifest_is_refused_naming_the_field(kube_api: Any, kubectl: Any, edit: Any, field: str) -> None:
    manifest = yaml.safe_load((EXAMPLES / "gcs-job.yaml").read_text())
    edit(manifest)
    code, _, err = await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert code != 0 and field in err, err
    assert kube_api.get_object("batchinferencejobs", "default", "reviews-sentiment") is None


async def test_immutable_edit_is_refused(kube_api: Any, kubectl: Any) -> None:
    await kubectl("apply", "-f", str(EXAMPLES / "gcs-job.yaml"))
    manifest = yaml.safe_load((EXAMPLES / "gcs-job.yaml").read_text())
    manifest["spec"]["model"] = "gemini-2.5-pro"
    code, _, err = await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert code != 0 and "spec.model" in err and "immutable" in err
    manifest["spec"]["model"] = "gemini-2.5-flash"
    manifest["spec"]["labels"]["team"] = "ranking"
    _, out, _ = await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert "configured" in out


async def test_standalone_server_writes_a_working_kubeconfig(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "standalone" / "kubeconfig"
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "local_stack",
        "kube-api",
        "--port",
        "0",
        "--kubeconfig",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await eventually(config.exists, timeout=20, message="kubeconfig written")
        _, out, err = await run_kubectl(config, "get", "namespaces", "-o", "name")
        assert out.split() == ["namespace/default"], err
    finally:
        server.terminate()
        assert await asyncio.wait_for(server.wait(), 10) == 0


async def test_namespaces_events_and_field_selectors_as_on_a_cluster(kube_api: Any, kubectl: Any) -> None:
    """`kubectl create ns` (protobuf), `kubectl get events` (the apiserver's Event columns), and field
    selectors: `status.phase` is declared selectable by the CRD, other fields are refused as a real
    apiserver refuses them."""
    _, out, _ = await kubectl("create", "namespace", "team-a")
    assert out.strip() == "namespace/team-a created"
    job = yaml.safe_load((EXAMPLES / "gcs-job.yaml").read_text())
    job["metadata"]["namespace"] = "team-a"
    await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job))
    await kubectl(
        "patch", "bij", "reviews-sentiment", "-n", "team-a", "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"Failed"}}',
    )  # fmt: skip
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "reviews-sentiment.1", "namespace": "team-a"},
        "type": "Warning",
        "reason": "Failed",
        "message": "the Vertex job failed",
        "involvedObject": {"kind": "BatchInferenceJob", "name": "reviews-sentiment", "namespace": "team-a"},
    }
    await kubectl("create", "-f", "-", stdin=yaml.safe_dump(event))
    _, table, _ = await kubectl("get", "events", "-n", "team-a")
    header, row = table.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "batchinferencejob/reviews-sentiment" in row and "the Vertex job failed" in row

    _, out, _ = await kubectl("get", "bij", "-A", "--field-selector", "status.phase=Failed", "-o", "name")
    assert out.split() == ["batchinferencejob.batchinference.dev/reviews-sentiment"]
    code, _, err = await kubectl("get", "bij", "-A", "--field-selector", "spec.model=gemini-2.5-flash", check=False)
    assert code != 0 and "field label not supported: spec.model" in err


async def test_a_wrong_api_version_says_no_matches_for_kind(kube_api: Any, kubectl: Any) -> None:
    text = (EXAMPLES / "gcs-job.yaml").read_text().replace("batchinference.dev/v1alpha1", "batchinference.dev/v1")
    code, _, err = await kubectl("apply", "-f", "-", stdin=text, check=False)
    assert code != 0
    assert 'no matches for kind "BatchInferenceJob" in version "batchinference.dev/v1"' in err, err
