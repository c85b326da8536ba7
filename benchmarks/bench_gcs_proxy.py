"""What the strict Cloud Storage proxy (local_stack.gcs_strict) costs: one large resumable upload with
`if_generation_match=0` (as the shard writer uploads), then its download, into fake-gcs-server alone and
through the proxy in front of it, each against a fresh server, the two ways alternating.

    .venv/bin/python benchmarks/bench_gcs_proxy.py [--mb 500] [--chunk-mb 32] [--runs 3]

Prints the best seconds (MB/s) of each way and the CPU seconds the proxy process spent: on a shared
machine the wall-clock difference is mostly noise, the proxy's CPU time is its cost.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

from local_stack.gcs_server import FakeGcsServer, GcsEmulator, gcs_client


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(server: FakeGcsServer | GcsEmulator, data: bytes, chunk: int) -> tuple[float, float, float, float]:
    """Upload and download seconds, and the proxy's CPU seconds for each (0 without a proxy)."""
    pid = server.pid if isinstance(server, GcsEmulator) else None
    bucket = gcs_client(server.url).create_bucket(f"bench-{time.monotonic_ns()}")
    cpu, started = cpu_seconds(pid), time.perf_counter()
    with bucket.blob("big.bin").open("wb", chunk_size=chunk, if_generation_match=0, checksum=None) as writer:
        for start in range(0, len(data), chunk):
            writer.write(data[start : start + chunk])
    uploaded, upload_cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    cpu, started, size = cpu_seconds(pid), time.perf_counter(), 0
    with bucket.blob("big.bin").open("rb", chunk_size=chunk) as reader:
        while piece := reader.read(chunk):
            size += len(piece)
    assert size == len(data)
    return uploaded, time.perf_counter() - started, upload_cpu, cpu_seconds(pid) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--chunk-mb", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.mb << 20)
    chunk = args.chunk_mb << 20
    results: dict[str, list[tuple[float, float, float, float]]] = {"alone": [], "proxied": []}
    for _ in range(args.runs):
        for way, make in (("alone", FakeGcsServer), ("proxied", GcsEmulator)):
            with make() as server:
                results[way].append(run(server, data, chunk))
    megabytes = len(data) / 1e6
    for way, label in (("alone", "fake-gcs-server alone"), ("proxied", "through the strict proxy")):
        up, down = min(r[0] for r in results[way]), min(r[1] for r in results[way])
        print(f"{label:<26} upload {up:6.2f}s ({megabytes / up:6.1f} MB/s)  download {down:6.2f}s", end="")
        print(f" ({megabytes / down:6.1f} MB/s)")
    up_cpu, down_cpu = (min(r[i] for r in results["proxied"]) for i in (2, 3))
    print(f"proxy CPU: upload {up_cpu:.2f}s ({megabytes / max(up_cpu, 1e-3):.0f} MB per CPU-second), ", end="")
    print(f"download {down_cpu:.2f}s ({megabytes / max(down_cpu, 1e-3):.0f} MB per CPU-second)")


if __name__ == "__main__":
    main()
