"""A small kopf operator, unchanged, against the local Kubernetes API: in-process and via `kopf run`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import sys
import textwrap
from typing import Any

import kopf
from test_kube_api import manifest

from conftest import bij_path, call, eventually

GVR = ("batchinference.dev", "v1alpha1", "batchinferencejobs")


def build_registry(seen: dict[str, int]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.create(*GVR, registry=registry)
    def created(patch: kopf.Patch, body: Any, **_: Any) -> None:
        seen["create"] = seen.get("create", 0) + 1
        patch.status["phase"] = "Pending"
        kopf.info(body, reason="Accepted", message="accepted by the test operator")

    @kopf.timer(*GVR, interval=0.2, registry=registry)
    def ticked(patch: kopf.Patch, body: Any, **_: Any) -> None:
        seen["timer"] = seen.get("timer", 0) + 1
        patch.status["message"] = f"tick {seen['timer']}"
        kopf.info(body, reason="Ticked", message=f"tick {seen['timer']}")

    @kopf.on.delete(*GVR, registry=registry)
    def deleted(**_: Any) -> None:
        seen["delete"] = seen.get("delete", 0) + 1

    return registry


async def test_kopf_operator_in_process(kube_api: Any, kube_url: str) -> None:
    seen: dict[str, int] = {}
    registry = build_registry(seen)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=kube_url, scheme="Bearer", token="local-stack")

    settings = kopf.OperatorSettings()
    settings.posting.level = logging.INFO
    ready = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=registry, settings=settings, standalone=True, namespaces=["default"], ready_flag=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        status, _ = await call(kube_api, "POST", bij_path(), manifest("kopf-job"))
        assert status == 201

        def stored() -> dict[str, Any] | None:
            return kube_api.get_object("batchinferencejobs", "default", "kopf-job")

        await eventually(
            lambda: (
                "batchinference.dev/finalizer" in (stored()["metadata"].get("finalizers") or [])
                or "kopf.zalando.org/KopfFinalizerMarker" in (stored()["metadata"].get("finalizers") or [])
            ),
            message="finalizer added",
        )
        await eventually(lambda: stored().get("status", {}).get("phase") == "Pending", message="status via /status")
        await eventually(lambda: seen.get("timer", 0) >= 2, message="timer ran")
        assert stored()["spec"]["model"] == "gemini-2.5-flash", "spec untouched by status writes"

        await eventually(lambda: len(kube_api.list_objects("events", "default")) >= 3, message="events")
        events = kube_api.list_objects("events", "default")
        assert {e["reason"] for e in events} >= {"Accepted", "Ticked"}
        assert {e["involvedObject"]["name"] for e in events} == {"kopf-job"}

        await call(kube_api, "DELETE", bij_path(name="kopf-job"))
        await eventually(lambda: stored() is None, message="object gone after the delete handler")
        # kopf runs handlers at least once: a run whose outcome patch lost a race with the timer's is repeated.
        assert seen["delete"] >= 1 and seen["create"] >= 1
        status_patches = [
            r
            for r in kube_api.request_log
            if str(r.method).upper().endswith("PATCH") and r.url.path.endswith("/status")
        ]
        assert status_patches, "kopf wrote status through the status subresource"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


OPERATOR_FILE = textwrap.dedent("""
    import kopf

    @kopf.on.create("batchinference.dev", "v1alpha1", "batchinferencejobs")
    def created(patch, body, **_):
        patch.status["phase"] = "Pending"
        kopf.info(body, reason="Accepted", message="accepted by kopf run")

    @kopf.timer("batchinference.dev", "v1alpha1", "batchinferencejobs", interval=0.3)
    def ticked(patch, **_):
        patch.status["message"] = "ticked"

    @kopf.on.delete("batchinference.dev", "v1alpha1", "batchinferencejobs")
    def deleted(logger, **_):
        logger.info("DELETE-HANDLER-RAN")
""")


async def test_kopf_run_subprocess(kube_api: Any, kubeconfig: pathlib.Path, tmp_path: pathlib.Path) -> None:
    operator_file = tmp_path / "operator.py"
    operator_file.write_text(OPERATOR_FILE)
    log_path = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            "--verbose",
            "-n",
            "default",
            str(operator_file),
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await eventually(
            lambda: (
                "Starting the main handler" in log_path.read_text()
                or (kube_api.request_log and any("watch" in str(r.url) for r in kube_api.request_log))
            ),
            timeout=20,
            message="kopf started",
        )
        assert (await call(kube_api, "POST", bij_path(), manifest("run-job")))[0] == 201

        def stored() -> dict[str, Any] | None:
            return kube_api.get_object("batchinferencejobs", "default", "run-job")

        await eventually(
            lambda: stored()["status"].get("message") == "ticked" if stored() and "status" in stored() else False,
            timeout=20,
            message="create handler and timer ran",
        )
        await eventually(lambda: stored()["status"].get("phase") == "Pending", timeout=20, message="create handler")
        assert stored()["metadata"]["finalizers"], log_path.read_text()
        await call(kube_api, "DELETE", bij_path(name="run-job"))
        await eventually(lambda: stored() is None, timeout=20, message="deleted")
        assert "DELETE-HANDLER-RAN" in log_path.read_text()
        assert any(e["reason"] == "Accepted" for e in kube_api.list_objects("events", "default"))
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
