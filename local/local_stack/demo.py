"""`make demo`: the examples, end to end, on the embedded local stack.

Starts the Kubernetes API, fake-gcs-server, the BigQuery stand-in, the Vertex emulator and the
operator; uploads the example inputs from `examples/data/` (JSONL files to buckets; a BigQuery input
table loaded from `data/<dataset>/<table>.jsonl` with its `.schema.json`); applies every example;
shows a live table until they finish; then prints where each output is and a few result rows. Exit
status 0 only if every applied job succeeded.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import tempfile
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from batch_inference_operator import api
from vertex_batch_emulator.engine import Config

from .bigquery_server import RETRY
from .data import load_manifests, place_example, split_gcs
from .kube.launch import server_url
from .stack import LocalStack

TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"}
DEADLINE_SECONDS = 240


async def _request(stack: LocalStack, method: str, path: str, body: Any = None) -> Any:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, server_url(stack.kube) + path, json=body, params={"fieldValidation": "Strict"}
        ) as response,
    ):
        payload = await response.json()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {payload.get('message', payload)}")
        return payload


def _is_shard(obj: dict[str, Any]) -> bool:
    """A child the operator made for one shard of a sharded resource."""
    return any(ref.get("kind") == api.KIND for ref in obj["metadata"].get("ownerReferences") or [])


def _ordered(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each resource followed by its shards' children."""
    children: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        for ref in obj["metadata"].get("ownerReferences") or []:
            children.setdefault(ref["uid"], []).append(obj)
    ordered = []
    for obj in objects:
        if not _is_shard(obj):
            ordered += [obj, *sorted(children.get(obj["metadata"]["uid"], []), key=lambda o: o["metadata"]["name"])]
    return ordered


def _table(objects: list[dict[str, Any]], totals: dict[str, int]) -> Table:
    table = Table(title="BatchInferenceJobs on the local stack")
    for column in ("NAMESPACE/NAME", "PHASE", "VERTEX STATE", "PROGRESS", "SHARDS", "AGE"):
        table.add_column(column)
    for obj in _ordered(objects):
        status = obj.get("status", {})
        stats = status.get("completionStats", {})
        done = stats.get("successful", 0) + stats.get("failed", 0)
        name = obj["metadata"]["name"]
        total = totals.get(name) or sum(shard.get("rows") or 0 for shard in status.get("shards") or [])
        total = total or (status.get("preflight") or {}).get("requests", 0)
        started = status.get("startTime")
        age = "-"
        if started:
            import datetime

            moment = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
            age = f"{(datetime.datetime.now(datetime.UTC) - moment).total_seconds():.0f}s"
        table.add_row(
            f"  └ {name}" if _is_shard(obj) else f"{obj['metadata']['namespace']}/{name}",
            status.get("phase", "-"),
            status.get("job", {}).get("state", "-").removeprefix("JOB_STATE_"),
            f"{done}/{total}",
            status.get("shardsDone", "-"),
            age,
        )
    return table


def _results(stack: LocalStack, output: str, count: int = 3) -> list[str]:
    """A few result rows: from predictions.jsonl, or from the output table."""
    if output.startswith("bq://"):
        table_id = output.removeprefix("bq://")
        client = stack.bigquery.client(table_id.split(".")[0])  # type: ignore[union-attr]
        rows = [dict(row) for row in client.list_rows(table_id, max_results=count, retry=RETRY)]
    else:
        bucket, prefix = split_gcs(output)
        blob = stack.gcs.client().bucket(bucket).blob(f"{prefix}/predictions.jsonl")  # type: ignore[union-attr]
        with blob.open("r") as reader:
            rows = [json.loads(line) for line, _ in zip(reader, range(count), strict=False)]
    lines = []
    for row in rows:
        text = (row.get("response") or {}).get("candidates", [{}])[0].get("content", {}).get("parts", [{}])[0]
        key = row.get("id") or row.get("ticket_id") or "?"
        lines.append(f"{key}: {row.get('status') or text.get('text', '')[:90]}")
    return lines


def _manifest_rows(stack: LocalStack, uri: str, count: int = 3) -> list[str]:
    """The first rows of a results manifest: key, outcome, shard, and where the answer is."""
    bucket, name = split_gcs(uri)
    blob = stack.gcs.client().bucket(bucket).blob(name)  # type: ignore[union-attr]
    with blob.open("r") as reader:
        rows = [json.loads(line) for line, _ in zip(reader, range(count), strict=False)]
    return [
        f"{row['key']}: {row['outcome']}, shard {row['shard']}, {row.get('file', row.get('table'))} "
        f"line {row.get('line', row.get('row'))}"
        for row in rows
    ]


async def _demo(folder: pathlib.Path, console: Console) -> int:
    runnable = load_manifests(folder)
    if not runnable:
        console.print("no runnable examples found")
        return 1
    with tempfile.TemporaryDirectory(prefix="bij-demo-") as directory:
        config = Config(queue_seconds=1.0, min_run_seconds=2.0, rows_per_second=150)
        async with LocalStack(pathlib.Path(directory), vertex_config=config) as stack:
            console.print(f"local stack up: {stack.endpoints}")
            totals = {}
            for path, manifest in runnable:
                totals[manifest["metadata"]["name"]] = await asyncio.to_thread(
                    place_example, stack.gcs.client(), stack.endpoints["bigquery"], manifest, folder / "data"
                )
                namespace = manifest["metadata"].get("namespace", "default")
                await _request(
                    stack, "POST", f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}", manifest
                )
                console.print(f"applied {path.name}: {manifest['metadata']['name']}")
            deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
            objects: list[dict[str, Any]] = []
            listed: list[dict[str, Any]] = []
            with Live(_table([], totals), console=console, refresh_per_second=4) as live:
                while asyncio.get_running_loop().time() < deadline:
                    listed = (await _request(stack, "GET", f"/apis/{api.GROUP}/{api.VERSION}/{api.PLURAL}"))["items"]
                    live.update(_table(listed, totals))
                    objects = [obj for obj in listed if not _is_shard(obj)]
                    if len(objects) == len(runnable) and all(
                        o.get("status", {}).get("phase") in TERMINAL for o in objects
                    ):
                        break
                    await asyncio.sleep(0.5)  # the table's refresh pace
            console.print()
            failures = 0
            for obj in objects:
                status = obj.get("status", {})
                name = obj["metadata"]["name"]
                if status.get("phase") != "Succeeded":
                    failures += 1
                    console.print(f"[red]{name}: {status.get('phase', 'not finished')}[/]: {status.get('message')}")
                    continue
                succeeded = status["completionStats"]["successful"]
                requests = "request" if succeeded == 1 else "requests"
                if status.get("shards"):  # sharded: each shard's child wrote its own output
                    shards = status["shards"]
                    console.print(f"[green]{name}[/]: {succeeded} {requests} succeeded in {len(shards)} shards")
                    outputs = [_shard_output(listed, shard.get("resource")) for shard in shards]
                else:
                    output = status["outputLocation"]
                    shown = output if output.startswith("bq://") else f"{output}/predictions.jsonl"
                    console.print(f"[green]{name}[/]: {succeeded} {requests} succeeded; output: {shown}")
                    outputs = [output]
                usage = status.get("usage", {})
                console.print(
                    f"    tokens: {usage.get('promptTokens', 0):,} prompt ({usage.get('cachedTokens', 0):,} from the "
                    f"implicit cache, hit ratio {usage.get('cacheHitRatio', 0):.0%}), "
                    f"{usage.get('candidatesTokens', 0):,} output, {usage.get('thoughtsTokens', 0):,} thinking; "
                    f"estimated batch cost ${usage.get('estimatedCostUSD', '?')}"
                )
                for output in outputs:
                    if len(outputs) > 1:
                        console.print(f"    shard output {output}:")
                    for line in await asyncio.to_thread(_results, stack, output, 3 if len(outputs) == 1 else 1):
                        console.print(f"    {line}")
                if status.get("manifest", "").startswith("gs://"):
                    rows = status.get("rows") or {}
                    console.print(
                        f"    results manifest {status['manifest']}: {rows.get('total', 0)} rows, "
                        f"{rows.get('succeeded', 0)} succeeded, {rows.get('failed', 0)} failed, "
                        f"{rows.get('missing', 0)} missing"
                    )
                    for line in await asyncio.to_thread(_manifest_rows, stack, status["manifest"]):
                        console.print(f"    {line}")
            if len(objects) < len(runnable) or not all(o.get("status", {}).get("phase") in TERMINAL for o in objects):
                console.print(f"[red]not every job finished within {DEADLINE_SECONDS}s[/]")
                failures += 1
            if failures:
                console.print(stack.operator_log()[-3000:])
            return 1 if failures else 0


def _shard_output(listed: list[dict[str, Any]], child: str | None) -> str:
    found = next((obj for obj in listed if obj["metadata"]["name"] == child), {})
    return str(found.get("status", {}).get("outputLocation", ""))


def run_demo(folder: str) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)
    return asyncio.run(_demo(pathlib.Path(folder), console))
