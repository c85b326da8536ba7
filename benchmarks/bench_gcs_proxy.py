"""What the strict Cloud Storage proxy (local_stack.gcs_strict) costs: one large resumable upload with
`if_generation_match=0` (as the shard writer uploads), then its download, into fake-gcs-server alone and
through the proxy in front of it, each against a fresh server.

    .venv/bin/python benchmarks/bench_gcs_proxy.py [--mb 500] [--chunk-mb 32] [--runs 2]

Prints seconds and MB/s of each way, best of `--runs`; the difference is the proxy's cost.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from local_stack.gcs_server import FakeGcsServer, GcsEmulator, gcs_client


def upload_and_download(url: str, data: bytes, chunk: int) -> tuple[float, float]:
    bucket = gcs_client(url).create_bucket(f"bench-{time.monotonic_ns()}")
    blob = bucket.blob("big.bin")
    started = time.perf_counter()
    with blob.open("wb", chunk_size=chunk, if_generation_match=0, checksum=None) as writer:
        for start in range(0, len(data), chunk):
            writer.write(data[start : start + chunk])
    uploaded = time.perf_counter() - started
    started = time.perf_counter()
    size = 0
    with bucket.blob("big.bin").open("rb", chunk_size=chunk) as reader:
        while piece := reader.read(chunk):
            size += len(piece)
    assert size == len(data)
    return uploaded, time.perf_counter() - started


def best(make: Callable[[], Any], data: bytes, chunk: int, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        with make() as server:
            times.append(upload_and_download(server.url, data, chunk))
    return min(t[0] for t in times), min(t[1] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--chunk-mb", type=int, default=32)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    data = os.urandom(args.mb << 20)
    chunk = args.chunk_mb << 20
    direct = best(FakeGcsServer, data, chunk, args.runs)
    proxied = best(GcsEmulator, data, chunk, args.runs)
    megabytes = len(data) / 1e6
    for way, (up, down) in (("fake-gcs-server alone", direct), ("through the strict proxy", proxied)):
        print(
            f"{way:<26} upload {up:6.2f}s ({megabytes / up:6.1f} MB/s)",
            f" download {down:6.2f}s ({megabytes / down:6.1f} MB/s)",
        )
    print(
        f"proxy cost: upload {proxied[0] - direct[0]:+.2f}s ({(proxied[0] / direct[0] - 1) * 100:+.1f}%), "
        f"download {proxied[1] - direct[1]:+.2f}s ({(proxied[1] / direct[1] - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    main()
