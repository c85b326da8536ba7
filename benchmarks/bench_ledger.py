"""The ledger's join: one shard of 200,000 rows (Vertex's per-job limit), input and output as local JSONL
files read in the GCS adapter's chunks; rows joined per second, MB/s over both files, and peak memory
beside a plain read of the same files (json.loads of every line, nothing kept).

    .venv/bin/python benchmarks/bench_ledger.py [--rows 200000] [--keyed | --content-keys]

Content keys hash each request's canonical JSON (both sides); a key field is read as it is.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import resource
import tempfile
import time
from collections.abc import Iterator

from batch_inference_operator.adapters.gcs import CHUNK, split_lines
from batch_inference_operator.core.ledger import Shard, Totals, index_output, input_rows, join, manifest_lines


def lines(path: pathlib.Path) -> Iterator[bytes]:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return split_lines(chunks())


def make_files(folder: pathlib.Path, rows: int, keyed: bool) -> tuple[pathlib.Path, pathlib.Path]:
    source, output = folder / "in.jsonl", folder / "predictions.jsonl"
    order = list(range(rows))
    random.Random(7).shuffle(order)  # Vertex writes rows in another order
    shared = "You label product reviews as positive, neutral or negative. " * 8
    request = lambda i: {  # noqa: E731
        "systemInstruction": {"parts": [{"text": shared}]},
        "contents": [{"role": "user", "parts": [{"text": f"review {i}: the kettle broke after {i % 97} days"}]}],
    }
    with source.open("w") as handle:
        for i in range(rows):
            handle.write(json.dumps(({"key": f"k{i}"} if keyed else {}) | {"request": request(i)}) + "\n")
    with output.open("w") as handle:
        for i in order:
            row = ({"key": f"k{i}"} if keyed else {}) | {
                "status": "",
                "processed_time": "2026-01-01T00:00:00.000+00:00",
                "request": request(i),
                "response": {"candidates": [{"content": {"role": "model", "parts": [{"text": "negative"}]}}]},
            }
            handle.write(json.dumps(row) + "\n")
    return source, output


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--content-keys", action="store_true", help="no key field: sha256 of each request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source, output = make_files(pathlib.Path(folder), args.rows, keyed=not args.content_keys)
        size_mb = (source.stat().st_size + output.stat().st_size) / 1e6
        before = peak_mb()
        started = time.perf_counter()
        for path in (source, output):
            for line in lines(path):
                json.loads(line)
        plain = time.perf_counter() - started
        after_plain = peak_mb()
        started = time.perf_counter()
        totals = Totals()
        shard = Shard(1, (str(source),), str(output))
        index = index_output(lines(output), "key")
        written = sum(
            len(line)
            for line in manifest_lines(join(shard, input_rows(str(source), lines(source), "key"), index, totals))
        )
        joined = time.perf_counter() - started
        assert totals.succeeded == args.rows, totals
        keys = "content keys" if args.content_keys else "key field"
        print(f"ledger join, {args.rows:,} rows ({keys}), input + output {size_mb:,.0f} MB:")
        print(f"  plain json.loads read  {plain:6.2f} s  {size_mb / plain:7.1f} MB/s  peak RSS {after_plain:7.0f} MB")
        print(
            f"  join + manifest        {joined:6.2f} s  {size_mb / joined:7.1f} MB/s  "
            f"{args.rows / joined:9,.0f} rows/s  peak RSS {peak_mb():7.0f} MB  (manifest {written / 1e6:.0f} MB)"
        )
        print(f"  (RSS before either pass: {before:.0f} MB)")


if __name__ == "__main__":
    main()
