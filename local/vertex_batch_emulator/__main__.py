"""`python -m vertex_batch_emulator --host 127.0.0.1 --port 8090`: a local Vertex AI batch prediction service.

Reads and writes Cloud Storage through the GCS emulator named by `STORAGE_EMULATOR_HOST` (or
`--gcs-endpoint`), and BigQuery tables through the stand-in named by `BIGQUERY_EMULATOR_HOST` (or
`--bigquery-endpoint`; without one, jobs that name BigQuery fail). Point google-genai at it with
`HttpOptions(base_url=...)`, an explicit project and location, and any static token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from . import bigquery as bq
from .config import QUEUE_LIMIT_SECONDS, Config
from .engine import Engine
from .rest import serve
from .storage import Storage, make_client


async def run(args: argparse.Namespace) -> None:
    config = Config(
        queue_seconds=args.queue_seconds,
        min_run_seconds=args.min_run_seconds,
        rows_per_second=args.rows_per_second,
        cache_threshold_tokens=args.cache_threshold_tokens,
        cancelling_seconds=args.cancelling_seconds,
        max_running_jobs_per_project=args.max_running_jobs_per_project,
        queue_limit_seconds=args.queue_limit_seconds,
    )
    bigquery = bq.BigQuery(bq.make_client(args.bigquery_endpoint)) if args.bigquery_endpoint else None
    engine = Engine(Storage(make_client(args.gcs_endpoint)), config, bigquery)
    async with serve(engine, args.host, args.port) as (url, _):
        print(f"Vertex batch emulator on {url} (GCS at {args.gcs_endpoint})", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vertex_batch_emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--gcs-endpoint",
        default=os.environ.get("STORAGE_EMULATOR_HOST"),
        help="GCS emulator URL (default: $STORAGE_EMULATOR_HOST)",
    )
    parser.add_argument(
        "--bigquery-endpoint",
        default=os.environ.get("BIGQUERY_EMULATOR_HOST"),
        help="BigQuery stand-in URL (default: $BIGQUERY_EMULATOR_HOST)",
    )
    parser.add_argument("--queue-seconds", type=float, default=2.0, help="time a job spends PENDING")
    parser.add_argument("--min-run-seconds", type=float, default=2.0, help="least time a job spends RUNNING")
    parser.add_argument("--rows-per-second", type=float, default=0.0, help="processing pace; 0 is unlimited")
    parser.add_argument(
        "--cache-threshold-tokens", type=int, default=2048, help="shared prompt prefix needed for an implicit-cache hit"
    )
    parser.add_argument("--cancelling-seconds", type=float, default=0.5, help="time a cancelled job spends CANCELLING")
    parser.add_argument(
        "--max-running-jobs-per-project",
        type=int,
        default=0,
        help="jobs of a project PENDING or later at once, the rest QUEUED; 0 is no limit",
    )
    parser.add_argument(
        "--queue-limit-seconds",
        type=float,
        default=QUEUE_LIMIT_SECONDS,
        help="time a job may wait QUEUED or PENDING before it ends EXPIRED (default 72 h)",
    )
    args = parser.parse_args(argv)
    if not args.gcs_endpoint:
        parser.error("no GCS emulator: set STORAGE_EMULATOR_HOST or pass --gcs-endpoint")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
