"""The container's command, run outside a container against the local stack: it starts, passes its
liveness probe, and logs one JSON object per line when asked to."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from conftest import eventually
from local_stack.loopback import free_port


async def test_container_command_passes_liveness_and_logs_json(stack: Any) -> None:
    await stack.stop_operator()
    port = free_port()
    stack.operator_env["BIJ_LOG_FORMAT"] = "json"
    await stack.start_operator(30.0, "--liveness", f"http://127.0.0.1:{port}/healthz")

    async def alive() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as reply:
                return reply.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(alive, timeout=20, message="liveness probe answers 200")
    lines = [line for line in stack.operator_log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "JSON log lines"
    assert any("starting: namespaces=all" in r.get("message", "") for r in records)
    assert all({"message", "timestamp", "severity"} <= r.keys() for r in records)
