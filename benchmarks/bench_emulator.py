"""Vertex emulator throughput and memory on a 200,000-row job.

Prints rows per second for the emulator's job (validation pass + inference pass + output) next to a
floor measured in the same run on the same GCS object: stream it, parse every line with orjson and
write it back out. Peak memory is the process's resident set sampled during each phase, minus the
resident set before it: it must stay flat in the input size.

    .venv/bin/python benchmarks/bench_emulator.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from local_stack.gcs_server import GcsEmulator
from vertex_batch_emulator.engine import Config, Engine
from vertex_batch_emulator.storage import Storage


def rss_bytes() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples the resident set every 10 ms in a thread while the block runs."""

    def __enter__(self) -> PeakRss:
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def write_input(storage: Storage, uri: str, rows: int) -> int:
    size = 0
    with storage.writer(uri) as out:
        for index in range(rows):
            line = (
                orjson.dumps(
                    {
                        "id": f"r{index}",
                        "request": {
                            "systemInstruction": {
                                "parts": [{"text": "You label product reviews as positive, neutral or negative."}]
                            },
                            "contents": [
                                {
                                    "role": "user",
                                    "parts": [{"text": f"Review {index}: " + "great value, fast delivery " * 8}],
                                }
                            ],
                            "generationConfig": {"temperature": 0.0, "maxOutputTokens": 16},
                        },
                    }
                )
                + b"\n"
            )
            out.write(line)
            size += len(line)
    return size


def floor_pass(storage: Storage, source: str, target: str) -> int:
    count = 0
    with storage.writer(target) as out:
        for line in storage.lines(source):
            if line:
                out.write(orjson.dumps(orjson.loads(line)) + b"\n")
                count += 1
    return count


def timed(function: Callable[[], Any]) -> tuple[Any, float, PeakRss]:
    with PeakRss() as memory:
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
    return result, elapsed, memory


async def run_job(engine: Engine, source: str, prefix: str) -> tuple[float, dict[str, Any]]:
    job = engine.create(
        "bench-project",
        "us-central1",
        {
            "displayName": "bench",
            "model": "publishers/google/models/gemini-2.0-flash-001",
            "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": [source]}},
            "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": prefix}},
        },
    )
    await engine.drain()
    assert job.start_time and job.end_time
    return (job.end_time - job.start_time).total_seconds(), job.to_rest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with GcsEmulator() as gcs:
        client = gcs.client()
        client.create_bucket("bench-data")
        storage = Storage(client)
        source = "gs://bench-data/in/requests.jsonl"
        size = write_input(storage, source, args.rows)
        floor_rows, floor_seconds, floor_memory = timed(
            lambda: floor_pass(storage, source, "gs://bench-data/copy.jsonl")
        )
        engine = Engine(storage, Config(queue_seconds=0.0, min_run_seconds=0.0))
        (job_seconds, job), _, job_memory = timed(lambda: asyncio.run(run_job(engine, source, "gs://bench-data/out/")))
    assert floor_rows == args.rows and job["state"] == "JOB_STATE_SUCCEEDED", job
    assert job["completionStats"]["successfulCount"] == str(args.rows)
    print(f"input: {args.rows:,} rows, {size / 1e6:.1f} MB")
    print(f"{'pass':<42}{'seconds':>9}{'rows/s':>11}{'MB/s':>8}{'peak RSS growth':>17}")
    for name, seconds, memory in [
        ("floor: stream, parse, write back", floor_seconds, floor_memory),
        ("emulator job: validate + infer + write", job_seconds, job_memory),
    ]:
        print(
            f"{name:<42}{seconds:>9.2f}{args.rows / seconds:>11,.0f}{size / seconds / 1e6:>8.1f}"
            f"{memory.growth_mb:>14.1f} MB"
        )
    print(f"emulator / floor time: {job_seconds / floor_seconds:.2f}x")


if __name__ == "__main__":
    main()
