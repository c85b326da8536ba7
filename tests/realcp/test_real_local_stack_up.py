"""`python -m local_stack up` on real clusters: `--kubeconfig FILE` runs the emulators and the operator
against an existing cluster (here the tier's kube-apiserver, as it would be kind or minikube), and
`--control-plane` starts its own etcd and kube-apiserver."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import socket
import sys
import urllib.parse

import pytest
import yaml
from test_local_stack_up import START_TIMEOUT, read_banner

from conftest import EXAMPLES, REPO, run_kubectl

pytestmark = pytest.mark.slow


async def start_up(directory: pathlib.Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "local_stack", "up", "--dir", str(directory), *args),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 60)


async def test_up_on_an_existing_cluster_runs_the_example_there(
    admin_kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    process = await start_up(tmp_path / "stack", "--kubeconfig", str(admin_kubeconfig), "--with-examples")
    try:
        banner = await asyncio.wait_for(read_banner(process), START_TIMEOUT)
        assert "the cluster keeps its resources" in banner and f"kubeconfig {admin_kubeconfig}" in banner, banner
        manifest = yaml.safe_load((EXAMPLES / "gcs-job.yaml").read_text())
        manifest["metadata"]["name"] = "up-on-a-cluster"
        code, _, err = await run_kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
        assert code == 0, err
        code, _, err = await run_kubectl(
            admin_kubeconfig, "wait", "--for=condition=Finished", "bij/up-on-a-cluster", "--timeout=60s"
        )
        assert code == 0, err
        _, phase, _ = await run_kubectl(
            admin_kubeconfig, "get", "bij", "up-on-a-cluster", "-o", "jsonpath={.status.phase}"
        )
        assert phase == "Succeeded"
    finally:
        await stop(process)
    assert process.returncode == 0
    _, names, _ = await run_kubectl(admin_kubeconfig, "get", "bij", "-o", "name")
    assert "up-on-a-cluster" in names, "the existing cluster keeps its resources after the stack stops"


async def test_up_with_its_own_control_plane_serves_the_crd_and_stops_it(
    control_plane: object, tmp_path: pathlib.Path
) -> None:
    """(`control_plane` only makes sure the binaries are built.)"""
    directory = tmp_path / "stack"
    process = await start_up(directory, "--control-plane")
    try:
        banner = await asyncio.wait_for(read_banner(process), START_TIMEOUT)
        kubeconfig = directory / "control-plane" / "kubeconfig-admin"
        assert f"kubeconfig {kubeconfig}" in banner and "https://127.0.0.1:" in banner, banner
        code, out, err = await run_kubectl(kubeconfig, "get", "bij")
        assert code == 0 and "No resources found" in err + out, err
        code, out, _ = await run_kubectl(kubeconfig, "version", "-o", "yaml")
        assert "gitVersion: v1.37" in out.split("serverVersion:")[1], out
        server = urllib.parse.urlsplit(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    finally:
        await stop(process)
    assert process.returncode == 0
    with pytest.raises(OSError), socket.create_connection((server.hostname, server.port), timeout=2):
        pass  # kube-apiserver stopped with the stack
