"""The operator's control loop on the local stack: apply -> Vertex create latency, and the Kubernetes
and Vertex requests each resource costs.

The Kubernetes API stand-in and the Vertex emulator run in this process; the operator is its own
process, started as its container starts it and configured only by its environment. Figures:

- P1 serial: resources applied one at a time (each waits for its create): apply -> create, median/p95.
- P1 burst: N resources applied at once: apply -> create of each, median/p95/max.
- P4: per resource that ran to success (3 phase changes: Pending, Running, Succeeded), the status
  writes (PATCH .../status), Event requests (POST/PATCH events), all Kubernetes requests but watches,
  and Vertex calls per create; with `--faults`, 30 % of Vertex lists and gets fail with 503 and 30 % of
  creates with 429.

"Apply" is the moment the API server answered the create of the resource; "create" is the Vertex
job's createTime as the emulator stamped it. The operator runs with the production defaults for the
loop (BIJ_RECONCILE_INTERVAL and BIJ_POLL_INTERVAL unset) unless --poll is given (P4 needs jobs to
finish, so it polls every --poll seconds).

    .venv/bin/python benchmarks/bench_control_loop.py [--serial 20] [--burst 100] [--writes 50] [--faults]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import pathlib
import statistics
import sys
import tempfile
from typing import Any

import aiohttp

from local_stack.stack import LocalStack
from vertex_batch_emulator.engine import Config

BIJ = "/apis/batchinference.dev/v1alpha1/namespaces/default/batchinferencejobs"
LOOP_DEFAULTS = ("BIJ_RECONCILE_INTERVAL", "BIJ_POLL_INTERVAL", "BIJ_RETRY_BASE")


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def manifest(name: str, source: str, bucket: str) -> dict[str, Any]:
    return {
        "apiVersion": "batchinference.dev/v1alpha1",
        "kind": "BatchInferenceJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "model": "gemini-2.5-flash",
            "project": "demo-project",
            "location": "us-central1",
            "input": {"gcs": {"uris": [source]}},
            "output": {"gcs": {"uriPrefix": f"gs://{bucket}/{name}/"}},
            "preflight": "Disabled",
        },
    }


async def apply(session: aiohttp.ClientSession, kube_url: str, body: dict[str, Any]) -> tuple[str, float]:
    async with session.post(kube_url + BIJ, json=body) as response:
        answered = datetime.datetime.now(datetime.UTC).timestamp()
        assert response.status == 201, await response.text()
        return (await response.json())["metadata"]["uid"], answered


def created_at(stack: LocalStack, uid: str) -> float | None:
    for job in list(stack.engine.jobs.values()):
        if job.labels.get("bij-uid") == uid:
            return job.create_time.timestamp()
    return None


async def wait_created(stack: LocalStack, uids: list[str], within: float) -> dict[str, float]:
    deadline = asyncio.get_running_loop().time() + within
    found: dict[str, float] = {}
    while len(found) < len(uids) and asyncio.get_running_loop().time() < deadline:
        for uid in uids:
            if uid not in found and (at := created_at(stack, uid)) is not None:
                found[uid] = at
        await asyncio.sleep(0.005)
    return found


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_row(label: str, values: list[float], expected: int) -> str:
    if not values:
        return f"{label:<28} no creates"
    return (
        f"{label:<28} n={len(values)}/{expected}  median {statistics.median(values):.3f}s  "
        f"p95 {quantile(values, 0.95):.3f}s  max {max(values):.3f}s"
    )


async def p1(stack: LocalStack, source: str, bucket: str, serial: int, burst: int) -> list[str]:
    """Apply -> create latencies; and the operator's RSS after the serial resources (its libraries all
    loaded by then: the first outputs were read) and after the burst, whose difference is per resource."""
    rows = []
    assert stack.operator is not None
    kube_url = str(stack.kube.url).rstrip("/")
    async with aiohttp.ClientSession() as session:
        one = []
        for i in range(serial):
            uid, applied = await apply(session, kube_url, manifest(f"serial-{i}", source, bucket))
            done = await wait_created(stack, [uid], 30)
            if uid in done:
                one.append(done[uid] - applied)
        rows.append(latency_row("P1 serial apply->create", one, serial))
        await asyncio.sleep(3.0)  # the serial jobs finish and their outputs are read
        warm = rss_mb(stack.operator.pid)
        rows.append(f"{'operator RSS after serial':<28} {warm:.0f} MB with {serial} resources")
        if burst:
            bodies = [manifest(f"burst-{i}", source, bucket) for i in range(burst)]
            applied = await asyncio.gather(*(apply(session, kube_url, body) for body in bodies))
            done = await wait_created(stack, [uid for uid, _ in applied], 120)
            many = [done[uid] - at for uid, at in applied if uid in done]
            rows.append(latency_row(f"P1 burst of {burst}", many, burst))
            await asyncio.sleep(3.0)
            loaded = rss_mb(stack.operator.pid)
            rows.append(
                f"{'operator RSS after burst':<28} {loaded:.0f} MB with {serial + burst} resources "
                f"({(loaded - warm) * 1024 / burst:.0f} KB per resource of the burst)"
            )
    return rows


def kube_requests(stack: LocalStack, names: set[str]) -> dict[str, dict[str, int]]:
    """Per resource: status writes, Event requests, and every request but watches."""
    counts = {name: {"status": 0, "events": 0, "all": 0} for name in names}
    for request in stack.kube.request_log:
        if request.params.get("watch") in ("true", "1"):
            continue
        path = request.url.path
        name = None
        if "/batchinferencejobs/" in path:
            name = path.split("/batchinferencejobs/", 1)[1].split("/")[0]
        elif "/events" in path:
            try:
                body = json.loads(request.data) if isinstance(request.data, (str, bytes)) else request.data
            except ValueError:
                body = None
            involved = (body or {}).get("involvedObject", {}) if isinstance(body, dict) else {}
            name = involved.get("name") or (path.rsplit("/", 1)[-1].split(".")[0] if "/events/" in path else None)
            if name in counts:
                counts[name]["events"] += 1
        if name in counts:
            counts[name]["all"] += 1
            if path.endswith("/status") and str(request.method).upper().endswith("PATCH"):
                counts[name]["status"] += 1
    return counts


async def p4(stack: LocalStack, source: str, bucket: str, count: int, faults: bool) -> list[str]:
    if faults:
        plan = {
            "api": [
                {"method": "list", "code": 503, "rate": 0.3, "count": 100000, "seed": 1},
                {"method": "get", "code": 503, "rate": 0.3, "count": 100000, "seed": 2},
                {"method": "create", "code": 429, "rate": 0.3, "count": 100000, "seed": 3},
            ]
        }
        stack.engine.faults.add(plan)
    before = dict(stack.engine.stats)
    kube_url = str(stack.kube.url).rstrip("/")
    names = {f"p4-{i}" for i in range(count)}
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(apply(session, kube_url, manifest(n, source, bucket)) for n in sorted(names)))
    deadline = asyncio.get_running_loop().time() + 300
    while asyncio.get_running_loop().time() < deadline:
        phases = [
            (stack.kube.get_object("batchinferencejobs", "default", n) or {}).get("status", {}).get("phase")
            for n in names
        ]
        if all(p == "Succeeded" for p in phases):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # Events are posted after the status write that caused them
    stack.engine.faults.clear()
    counts = kube_requests(stack, names)
    calls = {key: value - before.get(key, 0) for key, value in stack.engine.stats.items()}
    vertex = sum(v for (method, _), v in calls.items() if method in ("create", "list", "get", "cancel"))
    succeeded = sum(
        1
        for n in names
        if (stack.kube.get_object("batchinferencejobs", "default", n) or {}).get("status", {}).get("phase")
        == "Succeeded"
    )
    label = "P4 with 30 % Vertex faults" if faults else "P4 no faults"

    def per(key: str) -> str:
        values = [c[key] for c in counts.values()]
        return f"mean {statistics.mean(values):.1f} max {max(values)}"

    return [
        f"{label:<28} {succeeded}/{count} succeeded; status writes per job {per('status')} (goal <= 3 + 2); "
        f"Event requests per job {per('events')}; Kubernetes requests per job {per('all')}; "
        f"Vertex calls {vertex} ({vertex / count:.1f} per job: {dict(sorted(calls.items()))})"
    ]


async def main(args: argparse.Namespace) -> None:
    directory = pathlib.Path(tempfile.mkdtemp(prefix="bench-control-loop-"))
    env = {"BIJ_POLL_INTERVAL": str(args.poll)} if args.poll else {}
    stack = LocalStack(directory, vertex_config=Config(queue_seconds=0.5, min_run_seconds=1.0), operator_env=env)
    for name in LOOP_DEFAULTS:  # production defaults for the loop (the stack's own are for fast tests)
        if name not in env:
            stack.operator_env.pop(name, None)
    async with stack:
        assert stack.gcs is not None
        bucket = stack.gcs.client().create_bucket("bench-control-loop")
        blob = bucket.blob("in.jsonl")
        row = {"request": {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}}
        blob.upload_from_string(json.dumps(row) + "\n")
        source = "gs://bench-control-loop/in.jsonl"
        assert stack.operator is not None
        await asyncio.sleep(2.0)  # settle after start
        idle = rss_mb(stack.operator.pid)
        rows = [f"{'operator RSS idle':<28} {idle:.0f} MB"]
        if args.serial or args.burst:
            rows += await p1(stack, source, bucket.name, args.serial, args.burst)
        if args.writes:
            rows += await p4(stack, source, bucket.name, args.writes, args.faults)
        print(f"bench_control_loop ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}Z, {sys.platform})")
        print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serial", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--writes", type=int, default=0, help="resources run to success for P4 (0: skip)")
    parser.add_argument("--faults", action="store_true", help="P4 with 30 %% Vertex faults")
    parser.add_argument("--poll", type=float, default=0, help="BIJ_POLL_INTERVAL for the run (0: the default)")
    asyncio.run(main(parser.parse_args()))
