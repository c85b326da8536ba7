"""The local BigQuery stand-in: PyPI's `bqemulator` (DuckDB underneath) as a subprocess on loopback.

bqemulator loads DuckDB's `spatial` extension at start and would download it; the pinned
`duckdb-extension-spatial` wheel carries the file, so `python -m local_stack.bigquery_server` first
installs it from the wheel into DuckDB's extension directory (offline, idempotent), then runs the
emulator in memory. The real `google-cloud-bigquery` client talks to it over REST.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from .loopback import LoopbackServer, free_port

# Against a stand-in, a 500 is a bug to see at once, not something to retry for ten minutes.
RETRY = bigquery.DEFAULT_RETRY.with_deadline(15)


class BigQueryEmulator(LoopbackServer):
    name = "the BigQuery emulator"
    health_path = "/healthz"
    start_timeout = 60.0  # a Python server importing DuckDB, slower to start than fake-gcs-server

    def __init__(self, port: int | None = None, log_path: pathlib.Path | None = None) -> None:
        super().__init__(port, log_path)
        self.grpc_port = free_port()

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "local_stack.bigquery_server"),
            *("--port", str(self.port), "--grpc-port", str(self.grpc_port)),
        ]

    def client(self, project: str = "local-stack") -> bigquery.Client:
        return bigquery_client(self.url, project)


def bigquery_client(url: str, project: str = "local-stack") -> bigquery.Client:
    """The real BigQuery client, anonymous, pointed at the stand-in's URL; queries run in `project`."""
    return bigquery.Client(project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url})


def install_spatial_extension() -> None:
    """Copy DuckDB's spatial extension from its PyPI wheel into DuckDB's extension directory."""
    from duckdb_extensions import import_extension

    import_extension("spatial")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.bigquery_server", description=__doc__)
    parser.add_argument("--port", type=int, default=9050)
    parser.add_argument("--grpc-port", type=int, default=9060)
    parser.add_argument("--project", default="local-stack")
    args = parser.parse_args(argv)
    install_spatial_extension()
    from bqemulator.cli import main as bqemulator_main

    bqemulator_main(
        [
            *("start", "--rest-port", str(args.port), "--grpc-port", str(args.grpc_port)),
            *("--project", args.project, "--ephemeral", "--log-level", "warning"),
        ],
        prog_name="bqemulator",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
