"""Preflight and usage throughput (MB/s) with orjson, side by side with the standard library's json in
the same run, and peak memory while checking a large file (1 GB by default).

    .venv/bin/python benchmarks/bench_preflight_usage.py [--size-mb 1024] [--baseline-mb 128]

Both passes read the file from local disk in the same streamed chunks as the GCS adapter, so the
figures are the parsing and checking cost, without network. The stdlib baseline runs the same code
with `json.loads` swapped in, over the first --baseline-mb of each file (it is slower, not different).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import tempfile
import time
from collections.abc import Iterator

from batch_inference_operator.core.preflight_jsonl import Preflight
from batch_inference_operator.core.usage import scan

CHUNK = 4 << 20


def lines(path: pathlib.Path, limit: int | None = None) -> Iterator[bytes]:
    pending, read = b"", 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            read += len(chunk)
            parts = (pending + chunk).split(b"\n")
            pending = parts.pop()
            yield from parts
            if limit and read >= limit:
                return
    if pending:
        yield pending


def make_files(folder: pathlib.Path, size: int) -> tuple[pathlib.Path, pathlib.Path]:
    """An input of requests and an output of Vertex rows, each about `size` bytes."""
    shared = "You label product reviews. " * 350
    source, output = folder / "requests.jsonl", folder / "predictions.jsonl"
    with source.open("wb") as requests, output.open("wb") as predictions:
        index = 0
        while requests.tell() < size or predictions.tell() < size:
            request = {
                "systemInstruction": {"parts": [{"text": shared}]},
                "contents": [{"role": "user", "parts": [{"text": f"Review {index}: fine value " * 4}]}],
                "generationConfig": {"temperature": 0.0},
            }
            if requests.tell() < size:
                requests.write(json.dumps({"id": f"r{index}", "request": request}).encode() + b"\n")
            if predictions.tell() < size:
                predictions.write(
                    json.dumps(
                        {
                            "id": f"r{index}",
                            "status": "",
                            "processed_time": "2026-11-24T00:00:00Z",
                            "request": request,
                            "response": {
                                "candidates": [{"content": {"parts": [{"text": "positive"}]}}],
                                "usageMetadata": {
                                    "promptTokenCount": 2400,
                                    "cachedContentTokenCount": 2048,
                                    "candidatesTokenCount": 3,
                                    "totalTokenCount": 2403,
                                },
                            },
                        }
                    ).encode()
                    + b"\n"
                )
            index += 1
    return source, output


def measure(label: str, size: int, run) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    rate = size / seconds / 1e6
    print(f"  {label:<46}{size / 1e6:>9.0f} MB{seconds:>9.2f} s{rate:>9.1f} MB/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--baseline-mb", type=int, default=128)
    args = parser.parse_args()
    size, baseline = args.size_mb << 20, min(args.baseline_mb, args.size_mb) << 20
    with tempfile.TemporaryDirectory() as folder:
        source, output = make_files(pathlib.Path(folder), size)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"files: {source.stat().st_size / 1e6:.0f} MB of requests, {output.stat().st_size / 1e6:.0f} MB of output"
        )
        preflight_fast = measure(
            "preflight, orjson (whole file)",
            source.stat().st_size,
            lambda: Preflight().check_file("f", 0, lines(source)),
        )
        usage_fast = measure("usage scan, orjson (whole file)", output.stat().st_size, lambda: scan(lines(output)))
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        preflight_fast_b = measure(
            "preflight, orjson (baseline slice)",
            baseline,
            lambda: Preflight().check_file("f", 0, lines(source, baseline)),
        )
        preflight_slow = measure(
            "preflight, stdlib json (baseline slice)",
            baseline,
            lambda: Preflight(loads=json.loads).check_file("f", 0, lines(source, baseline)),
        )
        usage_fast_b = measure("usage scan, orjson (baseline slice)", baseline, lambda: scan(lines(output, baseline)))
        usage_slow = measure(
            "usage scan, stdlib json (baseline slice)",
            baseline,
            lambda: scan(lines(output, baseline), loads=json.loads),
        )
    print(
        f"orjson / stdlib json: preflight {preflight_fast_b / preflight_slow:.2f}x, "
        f"usage {usage_fast_b / usage_slow:.2f}x"
    )
    print(f"whole-file rates: preflight {preflight_fast:.1f} MB/s, usage {usage_fast:.1f} MB/s")
    print(f"peak RSS: {rss_before:.0f} MB before the passes, {rss_after:.0f} MB after both whole-file passes")


if __name__ == "__main__":
    main()
