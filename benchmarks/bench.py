"""`make bench`: one table of the operator's figures (P1 to P4), each with its goal and met or missed,
beside baselines measured in the same run.

    .venv/bin/python benchmarks/bench.py [--jobs 1000] [--faults-jobs 200] [--scan-mb 1024] [--kube real]

The Kubernetes API stand-in (counting the requests it serves), fake-gcs-server, the Vertex emulator
and the operator run as four processes (scale_stack.py); this process applies resources over HTTP,
follows them with one watch, reads the emulator's job timelines and statistics, the operator's
metrics and its /proc figures. The operator runs at its default settings except
BIJ_POLL_INTERVAL (--poll, 5 s), so a run takes minutes, not hours; each Vertex job runs
--run-seconds (more than two poll intervals) so its RUNNING state can be seen. The naive baseline
is what other tools do: one GET per job per round, timed over the same jobs. With --kube real
(BIJ_BENCH_KUBE=real) a real kube-apiserver and etcd take the stand-in's place (real_kube.py), so the
control-loop rows measure the operator, not the test double.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import aiohttp
import yaml

import bench_emulator_list
import bench_preflight_usage
from batch_inference_operator.settings import Settings
from harness import EMULATOR_MAX_PAGE, Harness, parse_time, pct
from scale_stack import Stack

Row = tuple[str, str, str, bool | None]


def goal_row(name: str, figure: str, goal: str, met: bool | None) -> Row:
    return (name, figure, goal, met)


async def p1(h: Harness, serial: int, burst: int) -> list[Row]:
    serial_names = [f"serial-{i}" for i in range(serial)]
    latencies = []
    for name in serial_names:
        await h.apply(name)
        jobs = await h.until_created([name], 60, 0.02)
        latencies += h.create_latencies(jobs)
    burst_names = [f"burst-{i}" for i in range(burst)]
    await h.apply_all(burst_names, concurrency=burst)
    jobs = await h.until_created(burst_names, 120, 0.25)
    burst_latencies = h.create_latencies(jobs)
    answers = [h.answered[name] for name in burst_names]
    await h.until_finished(serial_names + burst_names, 300)
    return [
        goal_row(
            f"P1 apply -> Vertex create, {serial} one at a time",
            f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
            f"(load average {os.getloadavg()[0]:.1f})",
            "<= 0.25 s at default settings",
            statistics.median(latencies) <= 0.25,
        ),
        goal_row(
            f"P1 burst of {burst}",
            f"median {statistics.median(burst_latencies):.2f} s, p95 {pct(burst_latencies, 0.95):.2f} s; the "
            f"API server took p50 {pct(answers, 0.5):.2f} s, p95 {pct(answers, 0.95):.2f} s just to answer the applies",
            "p95 <= 1 s",
            pct(burst_latencies, 0.95) <= 1,
        ),
    ]


async def p2(h: Harness, count: int, poll: float, prefix: str, within: float) -> tuple[list[Row], dict[str, Any]]:
    """`count` resources applied together: creates, status delays, calls, memory, CPU, requests."""
    assert h.stack.operator is not None
    names = [f"{prefix}-{i}" for i in range(count)]
    kube_before, vertex_before = await h.kube_counts(), await h.vertex_calls()
    rounds_before = await h.metric("bij_poll_round_seconds_count")
    cpu_before, h.rss_peak = h.stack.operator.cpu_seconds(), 0.0
    kube_cpu_before, own_before = h.stack.kube.cpu_seconds(), h.own_reads
    started = time.time()
    await h.apply_all(names)
    unfinished, steady = None, (Counter[str](), 0.0)
    try:
        await h.until_created(names, within, 2.0)
        # from the last create to the last finish the operator only polls: its LIST calls per round
        created_calls, created_rounds = await h.vertex_calls(), await h.metric("bij_poll_round_seconds_count")
        await h.until_finished(names, within)
        steady = (
            await h.vertex_calls() - created_calls,
            await h.metric("bij_poll_round_seconds_count") - created_rounds,
        )
    except TimeoutError as error:
        unfinished = str(error)
    jobs = await h.vertex_jobs(names)
    elapsed = time.time() - started
    cpu = h.stack.operator.cpu_seconds() - cpu_before
    kube_cpu = h.stack.kube.cpu_seconds() - kube_cpu_before
    kube = await h.kube_counts() - kube_before
    served = sum(n for key, n in kube.items() if not key.startswith("WATCH"))  # the harness's applies too
    vertex = await h.vertex_calls() - vertex_before
    rounds = await h.metric("bij_poll_round_seconds_count") - rounds_before
    creates = h.create_latencies(jobs) or [math.nan]
    delays, missed, states = h.status_delays([n for n in names if n in jobs], jobs)
    changes = statistics.mean(h.phase_changes(names))
    # The operator's requests: not the harness's own applies (POST batchinferencejobs) nor watches.
    operators = sum(n for key, n in kube.items() if not key.startswith(("WATCH", "POST batchinferencejobs")))
    requests = (operators - (h.own_reads - own_before)) / count
    status_writes = sum(n for key, n in kube.items() if key.endswith("batchinferencejobs/status")) / count
    events = (kube.get("POST events", 0) + kube.get("PATCH events", 0)) / count  # new Events and recurrences
    kopf_writes = kube.get("PATCH batchinferencejobs", 0) / count  # kopf's finalizer and annotations
    by_name = await h.distinct_events_of()
    distinct = sum(by_name.get(name, 0) for name in names) / count
    figures = {
        "status_writes": status_writes,
        "changes": changes,
        "list_calls": vertex.get("list", 0),
        "get_calls": vertex.get("get", 0),
        "rounds": rounds,
    }
    per_round = steady[0].get("list", 0) / steady[1] if steady[1] else math.nan
    least = math.ceil(count / EMULATOR_MAX_PAGE)
    label = f"P2 {count:,} jobs"
    cpu_figure = f"{cpu / count * 1000:.1f} ms ({elapsed:.0f} s run, load average {os.getloadavg()[0]:.1f})"
    rows = [
        create_row(label, count, creates, jobs),
        goal_row(
            f"{label}: Vertex state -> status",
            f"p50 {pct(delays, 0.5):.1f} s, p95 {pct(delays, 0.95):.1f} s; {missed} of {states} states never shown",
            f"p95 <= poll + 2 s = {poll + 2:g} s, none missed",
            pct(delays, 0.95) <= poll + 2 and missed == 0,
        ),
        goal_row(
            f"{label}: Vertex calls per poll round",
            f"{per_round:.1f} LIST per round once all were created ({steady[0].get('list', 0)} in "
            f"{steady[1]:.0f} rounds); over the run {vertex.get('list', 0) / count:.2f} LIST, "
            f"{vertex.get('get', 0) / count:.2f} GET, {vertex.get('create', 0) / count:.2f} create per job",
            f"ceil(N / largest page) = {least}",
            per_round <= least,
        ),
        goal_row(
            f"{label}: operator RSS",
            f"peak {h.rss_peak:.0f} MB",
            "<= 200 MB at 1,000, <= 300 MB at 5,000",
            h.rss_peak <= (200 if count <= 1000 else 300),
        ),
        goal_row(f"{label}: operator CPU per job", cpu_figure, "-", None),
        goal_row(
            f"{label}: {h.stack.kube.name}",
            f"{kube_cpu:.0f} CPU s = {kube_cpu / elapsed:.0%} of one core over the run; "
            f"{kube_cpu / max(1, served) * 1000:.1f} ms per request",
            h.stack.kube.what,
            None,
        ),
        goal_row(
            f"{label}: Kubernetes requests per job",
            f"{requests:.1f}: {status_writes:.1f} status writes ({changes:.1f} phase changes), {events:.1f} Event "
            f"writes ({distinct:.1f} distinct Events), {kopf_writes:.1f} kopf metadata patches",
            "status writes <= phase changes + 2; one Event write per distinct Event",
            status_writes <= changes + 2 and events <= distinct * 1.05,
        ),
    ]
    if unfinished:
        rows.insert(0, goal_row(f"{label}: finished", f"no: {unfinished}", "all finish", False))
    print(
        f"  {label}: done in {elapsed:.0f} s; Kubernetes requests {dict(sorted(kube.items()))}; "
        f"Vertex calls {dict(sorted(vertex.items()))}",
        file=sys.stderr,
        flush=True,
    )
    return rows, figures


def create_row(label: str, count: int, creates: list[float], jobs: dict[str, Any]) -> Row:
    """Apply -> create against the goal: all within 60 s, or at the configured create pace (the first
    BIJ_CREATE_BURST at once, then BIJ_CREATE_RATE per second), when that pace needs longer."""
    settings = Settings.from_env()
    rate, burst = settings.create_rate, settings.create_burst
    paced = max(0.0, (count - burst) / rate) if rate else 0.0
    times = sorted(parse_time(job["createTime"]) for job in jobs.values())
    beyond = times[burst:] if rate and len(times) > burst else []
    pace = (len(beyond) - 1) / (beyond[-1] - beyond[0]) if len(beyond) > 1 and beyond[-1] > beyond[0] else math.nan
    figure = f"median {statistics.median(creates):.1f} s, p95 {pct(creates, 0.95):.1f} s, max {max(creates):.1f} s"
    if len(jobs) != count:
        figure += f"; only {len(jobs)} created"
    if paced > 60:
        figure += f"; after the first {burst}: {pace:.1f} creates/s (configured {rate:g}/s: {paced:.0f} s for all)"
        goal = f"all created <= 60 s, or at the configured pace ({rate:g}/s after a burst of {burst})"
        return goal_row(f"{label}: apply -> Vertex create", figure, goal, len(jobs) == count and pace >= 0.9 * rate)
    met = len(jobs) == count and max(creates) <= 60
    return goal_row(f"{label}: apply -> Vertex create", figure, "all created <= 60 s", met)


async def naive_round(h: Harness, count: int) -> Row:
    """The baseline poller: one GET per job, all jobs, one round, 20 at a time."""
    assert h.stack.vertex is not None
    jobs = (await h.emulator("jobs"))["jobs"][:count]
    gate = asyncio.Semaphore(20)

    async def get(job: dict[str, Any]) -> None:
        url = f"{h.stack.vertex.url}/v1/{job['name']}"
        async with gate, h.session.get(url, headers={"Authorization": "Bearer bench"}) as response:
            await response.read()

    started = time.perf_counter()
    await asyncio.gather(*(get(job) for job in jobs))
    seconds = time.perf_counter() - started
    return goal_row(
        f"naive baseline, {len(jobs):,} jobs",
        f"{len(jobs)} GET per round, {seconds:.1f} s per round",
        "(baseline)",
        None,
    )


async def p4_faults(h: Harness, count: int, poll: float, within: float) -> list[Row]:
    plan = {
        "api": [
            {"method": method, "code": 503, "rate": 0.3, "seed": 11, "count": 100_000}
            for method in ("create", "get", "list")
        ]
    }
    await h.emulator("faults", "POST", plan)
    try:
        rows, figures = await p2(h, count, poll, "faulty", within)  # p2 reports what did not finish
    finally:
        await h.emulator("faults", "DELETE")
    return [
        goal_row(
            f"P4 status writes per job, 30 % Vertex faults ({count} jobs)",
            f"{figures['status_writes']:.1f} ({figures['changes']:.1f} phase changes)",
            "<= phase changes + 2",
            figures["status_writes"] <= figures["changes"] + 2,
        ),
        *[
            (name.replace("P2", "P4 with faults:"), *rest)
            for name, *rest in rows
            if "requests per job" in name or "finished" in name or "state -> status" in name
        ],
    ]


async def operator_rows(args: argparse.Namespace, directory: pathlib.Path) -> list[Row]:
    emulator_options = ["--queue-seconds", "1", "--min-run-seconds", str(args.run_seconds)]
    with Stack(directory, emulator_options, args.kube) as stack:
        bucket = stack.gcs.client()
        for name in ("bench-inputs", "bench-outputs"):
            bucket.create_bucket(name)
        request = {"request": {"contents": [{"role": "user", "parts": [{"text": "Label: fine value."}]}]}}
        bucket.bucket("bench-inputs").blob("one.jsonl").upload_from_string(json.dumps(request) + "\n")
        kube_url = yaml.safe_load(stack.kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        operator = stack.start_operator({"BIJ_POLL_INTERVAL": str(args.poll)}, args.profile)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120),
            headers=stack.kube.headers,
            connector=aiohttp.TCPConnector(ssl=stack.kube.ssl),
        ) as session:
            h = Harness(stack, session, kube_url)
            watcher = asyncio.create_task(h.watch())
            sampler = None
            try:

                async def watching() -> bool:
                    return await stack.kube.watches(session) >= 2  # the harness's and the operator's

                await h.until(watching, 60, "the operator watching", 0.1)
                await asyncio.sleep(args.idle_seconds)  # idle means idle for a while: a measurement window
                idle = operator.rss_mb()
                rows = [goal_row("operator RSS, idle", f"{idle:.0f} MB", "<= 120 MB", idle <= 120)]
                sampler = asyncio.create_task(h.sample_rss())
                rows += await p1(h, args.serial, args.burst)
                print("  P1 done", file=sys.stderr, flush=True)
                p4_rows: list[Row] = []
                for count in args.jobs:
                    p2_rows, figures = await p2(h, count, args.poll, f"n{count}", args.timeout)
                    rows += p2_rows
                    rows.append(await naive_round(h, count))
                    p4_rows.append(
                        goal_row(
                            f"P4 status writes per job, no faults ({count:,} jobs)",
                            f"{figures['status_writes']:.1f} ({figures['changes']:.1f} phase changes)",
                            "<= phase changes + 2",
                            figures["status_writes"] <= figures["changes"] + 2,
                        )
                    )
                if args.faults_jobs:
                    p4_rows += await p4_faults(h, args.faults_jobs, args.poll, args.faults_within)
                return rows + p4_rows
            finally:
                for task in (watcher, sampler):
                    if task is not None:
                        task.cancel()


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),  # noqa: SIM115
        platform.processor(),
    )
    print(
        f"\nbench {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
        f"load average {os.getloadavg()[0]:.1f}; Kubernetes API: {args.kube}; "
        f"BIJ_POLL_INTERVAL={args.poll:g}, other settings default\n"
    )
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    header = ("figure", "measured", "goal")
    print(f"| {header[0]:<{widths[0]}} | {header[1]:<{widths[1]}} | {header[2]:<{widths[2]}} | met |")
    print(f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|{'-' * (widths[2] + 2)}|-----|")
    for name, figure, goal, met in rows:
        verdict = "-" if met is None else ("met" if met else "MISSED")
        print(f"| {name:<{widths[0]}} | {figure:<{widths[1]}} | {goal:<{widths[2]}} | {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default=os.environ.get("BIJ_BENCH_JOBS", "1000"), help="P2 sizes, e.g. 1000,5000")
    parser.add_argument("--faults-jobs", type=int, default=200, help="P4 with Vertex faults (0: skip)")
    parser.add_argument("--serial", type=int, default=5)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--run-seconds", type=float, default=30.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--faults-within", type=float, default=420.0, help="seconds the faulty run may take")
    parser.add_argument("--scan-mb", type=int, default=1024)
    parser.add_argument("--baseline-mb", type=int, default=256)
    parser.add_argument("--emulator-jobs", type=int, default=10_000)
    parser.add_argument(
        "--kube",
        choices=["stand-in", "real"],
        default=os.environ.get("BIJ_BENCH_KUBE") or "stand-in",
        help="the Kubernetes API: the Python stand-in, or a real kube-apiserver and etcd (make control-plane)",
    )
    parser.add_argument("--profile", type=pathlib.Path, help="run the operator under cProfile, statistics to this file")
    parser.add_argument("--skip-operator", action="store_true", help="only the scans and the emulator's list")
    args = parser.parse_args()
    args.jobs = [int(n) for n in str(args.jobs).split(",") if n]
    rows: list[Row] = []
    if not args.skip_operator:
        with tempfile.TemporaryDirectory(prefix="bij-bench-") as folder:
            rows += asyncio.run(operator_rows(args, pathlib.Path(folder)))
    rows += bench_preflight_usage.measure(args.scan_mb, args.baseline_mb)
    rows += bench_emulator_list.measure(args.emulator_jobs)
    print_table(rows, args)


if __name__ == "__main__":
    main()
