"""The bench harness's view of the stack: applies resources, follows them with one watch, reads the
emulator's jobs and statistics, the Kubernetes request counts and the operator's metrics (bench.py)."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

from scale_stack import Stack

GROUP = "/apis/batchinference.dev/v1alpha1/namespaces/default/batchinferencejobs"
TERMINAL_PHASES = {"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"}
EMULATOR_MAX_PAGE = 1000  # the emulator's largest page (engine.list); the operator's page size is its own


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Harness:
    def __init__(self, stack: Stack, session: aiohttp.ClientSession, kube_url: str) -> None:
        self.stack, self.session, self.kube_url = stack, session, kube_url
        self.applied: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.seen: dict[str, list[tuple[float, str | None, str | None]]] = {}  # name -> (time, phase, state)
        self.rss_peak = 0.0
        self.own_reads = 0  # the harness's own LISTs while it waits: not the operator's requests

    # ---------------------------------------------------------------- the three servers

    async def kube_counts(self) -> Counter[str]:
        """Requests the Kubernetes API answered so far, by `VERB resource[/subresource]`."""
        return await self.stack.kube.counts(self.session)

    async def emulator(self, path: str, method: str = "GET", body: Any = None) -> Any:
        assert self.stack.vertex is not None
        async with self.session.request(method, f"{self.stack.vertex.url}/emulator/v1/{path}", json=body) as response:
            return await response.json()

    async def vertex_calls(self) -> Counter[str]:
        """Vertex API calls the emulator answered so far, by method (create, get, list...)."""
        by_method = (await self.emulator("stats"))["requests"]
        return Counter({method: sum(codes.values()) for method, codes in by_method.items()})

    async def metric(self, name: str) -> float:
        assert self.stack.operator is not None
        async with self.session.get(self.stack.operator.metrics_url) as response:
            text = await response.text()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    async def watch(self) -> None:
        """Every change to every resource, timed on arrival (one watch, as a controller would); reopened
        from the last version seen when the stream ends or breaks, so no change goes unseen."""
        version = ""
        while True:
            url = f"{self.kube_url}{GROUP}?watch=true&allowWatchBookmarks=false"
            url += f"&resourceVersion={version}" if version else ""
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
                    while raw := await response.content.readuntil(b"\n"):
                        if not raw.strip():
                            continue
                        event = json.loads(raw)
                        obj = event.get("object", {})
                        if event.get("type") == "ERROR":  # too old a version: start from now
                            version = ""
                            break
                        status = obj.get("status") or {}
                        metadata = obj.get("metadata", {})
                        version = metadata.get("resourceVersion") or version
                        self.seen.setdefault(metadata.get("name", ""), []).append(
                            (time.time(), status.get("phase"), (status.get("job") or {}).get("state"))
                        )
            except (aiohttp.ClientError, ValueError) as error:
                print(f"  the harness's watch broke ({error!r}); reopened", file=sys.stderr, flush=True)
            await asyncio.sleep(0.1)  # a pause before reopening, not a wait for a condition

    async def sample_rss(self) -> None:
        assert self.stack.operator is not None
        while True:
            self.rss_peak = max(self.rss_peak, self.stack.operator.rss_mb())
            await asyncio.sleep(0.5)  # a sampling period, not a wait for a condition

    # ---------------------------------------------------------------- applying and waiting

    async def apply(self, name: str) -> None:
        manifest = {
            "apiVersion": "batchinference.dev/v1alpha1",
            "kind": "BatchInferenceJob",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "model": "gemini-2.5-flash",
                "project": "bench-project",
                "location": "us-central1",
                "input": {"gcs": {"uris": ["gs://bench-inputs/one.jsonl"]}},
                "output": {"gcs": {"uriPrefix": f"gs://bench-outputs/{name}/"}},
            },
        }
        self.applied[name] = time.time()
        async with self.session.post(f"{self.kube_url}{GROUP}", json=manifest) as response:
            if response.status != 201:
                raise RuntimeError(f"apply {name}: {response.status} {await response.text()}")
        self.answered[name] = time.time() - self.applied[name]  # the API server's own time for the apply

    async def apply_all(self, names: list[str], concurrency: int = 50) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(name: str) -> None:
            async with gate:
                await self.apply(name)

        await asyncio.gather(*(one(name) for name in names))

    async def vertex_jobs(self, names: list[str]) -> dict[str, dict[str, Any]]:
        wanted = set(names)
        jobs = (await self.emulator("jobs"))["jobs"]
        return {j["labels"].get("bij-name"): j for j in jobs if j["labels"].get("bij-name") in wanted}

    async def until(self, predicate: Any, within: float, what: str, period: float = 0.05) -> None:
        deadline = time.monotonic() + within
        while not await predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {within:.0f} s")
            await asyncio.sleep(period)  # polling a condition, bounded by the deadline

    async def until_created(self, names: list[str], within: float, period: float) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}

        async def done() -> bool:
            found.update(await self.vertex_jobs(names))
            return len(found) == len(names)

        await self.until(done, within, f"{len(names)} Vertex jobs created", period)
        return found

    async def until_finished(self, names: list[str], within: float) -> None:
        """All finished, as the watch shows, or as a list says every 15 s (should the watch fall behind)."""
        checks = 0

        async def done() -> bool:
            nonlocal checks
            checks += 1
            if all(self.seen.get(n) and self.seen[n][-1][1] in TERMINAL_PHASES for n in names):
                return True
            if checks % 30:
                return False
            self.own_reads += 1
            async with self.session.get(f"{self.kube_url}{GROUP}") as response:
                items = (await response.json()).get("items") or []
            phases = {item["metadata"]["name"]: (item.get("status") or {}).get("phase") for item in items}
            return all(phases.get(n) in TERMINAL_PHASES for n in names)

        await self.until(done, within, f"{len(names)} resources finished", 0.5)

    def create_latencies(self, jobs: dict[str, dict[str, Any]]) -> list[float]:
        return [parse_time(job["createTime"]) - self.applied[name] for name, job in jobs.items()]

    def phase_changes(self, names: list[str]) -> list[int]:
        changes = []
        for name in names:
            phases = [phase for _, phase, _ in self.seen.get(name, []) if phase]
            changes.append(sum(1 for i, phase in enumerate(phases) if i == 0 or phase != phases[i - 1]))
        return changes

    async def distinct_events_of(self) -> dict[str, int]:
        """Distinct Event objects per resource name, as the API server keeps them."""
        async with self.session.get(f"{self.kube_url}/api/v1/namespaces/default/events") as response:
            items = (await response.json()).get("items") or []
        return dict(Counter(item["involvedObject"]["name"] for item in items))

    def status_delays(self, names: list[str], jobs: dict[str, dict[str, Any]]) -> tuple[list[float], int, int]:
        """Seconds from each Vertex state change to the resource showing it; states never shown; states."""
        delays, missed, total = [], 0, 0
        for name in names:
            for step in jobs[name]["timeline"]:
                if step["state"] not in ("JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"):
                    continue
                total += 1
                at = parse_time(step["time"])
                shown = [t for t, _, state in self.seen.get(name, []) if state == step["state"]]
                if shown:
                    delays.append(max(0.0, shown[0] - at))
                else:
                    missed += 1
        return delays, missed, total
