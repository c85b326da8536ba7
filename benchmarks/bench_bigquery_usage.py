"""Usage of a BigQuery output table: the operator's one query, side by side in the same run with the
alternative it replaces (download every row through the API and scan it in Python).

    .venv/bin/python benchmarks/bench_bigquery_usage.py [--rows 50000]

Against the local BigQuery stand-in (bqemulator on loopback), so the figures are a floor: on real
BigQuery the download also crosses the network and is billed as reads, while the query returns one
row. Both paths must agree on every number, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator

import orjson
from google.cloud import bigquery

from batch_inference_operator.core.usage import from_totals, scan, usage_query
from local_stack.bigquery_server import RETRY, BigQueryEmulator

SCHEMA = [
    bigquery.SchemaField("id", "STRING"),
    bigquery.SchemaField("request", "JSON"),
    bigquery.SchemaField("response", "JSON"),
    bigquery.SchemaField("status", "STRING"),
]


def output_rows(count: int) -> bytes:
    """Vertex-shaped output rows: 95 % succeeded with usage, 3 % throttled, 2 % never ran."""
    lines = []
    for i in range(count):
        row: dict = {"id": f"r{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"Review {i}"}]}]}}
        if i % 100 < 95:
            row["status"] = ""
            row["response"] = {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "positive " * 20}]}}],
                "usageMetadata": {"promptTokenCount": 40 + i % 7, "candidatesTokenCount": 20, "totalTokenCount": 60},
            }
        elif i % 100 < 98:
            row["status"] = 'Too Many Requests: {"error": {"code": 429}}'
            row["response"] = {}
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    with BigQueryEmulator() as emulator:
        client = emulator.client("bench-project")
        dataset = bigquery.Dataset("bench-project.bench")
        dataset.location = "us-central1"
        client.create_dataset(dataset, retry=RETRY)
        table_id = "bench-project.bench.predictions"
        client.create_table(bigquery.Table(table_id, schema=SCHEMA), retry=RETRY)
        with tempfile.TemporaryFile() as data:
            data.write(output_rows(args.rows))
            data.seek(0)
            config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=SCHEMA)
            client.load_table_from_file(data, table_id, job_config=config).result(retry=RETRY)

        started = time.perf_counter()
        by_query = from_totals(dict(next(iter(client.query_and_wait(usage_query(table_id), retry=RETRY)))))
        query_seconds = time.perf_counter() - started

        started = time.perf_counter()
        downloaded = 0

        def lines() -> Iterator[bytes]:
            nonlocal downloaded
            for row in client.list_rows(table_id, page_size=10_000, retry=RETRY):
                line = orjson.dumps(dict(row))
                downloaded += len(line)
                yield line

        by_download = scan(lines())
        download_seconds = time.perf_counter() - started

    same = (by_query.usage, by_query.rows) == (by_download.usage, by_download.rows)
    assert same, f"the two paths disagree:\n{by_query}\n{by_download}"
    usage, rows, _ = by_query
    print(f"output table: {args.rows:,} rows ({rows.succeeded:,} succeeded, {usage.prompt_tokens:,} prompt tokens)")
    print(f"usage query:          {query_seconds:7.2f} s, 1 row returned")
    print(f"download and scan:    {download_seconds:7.2f} s, {downloaded / 1e6:.1f} MB of rows returned")
    print(f"query is {download_seconds / query_seconds:.1f}x faster on loopback, and moves one row instead of all")


if __name__ == "__main__":
    main()
