"""The local BigQuery stand-in: PyPI's `bqemulator` (DuckDB underneath) as a subprocess on loopback.

bqemulator loads DuckDB's `spatial` extension at start and would download it; the pinned
`duckdb-extension-spatial` wheel carries the file, so `python -m local_stack.bigquery_server` first
installs it from the wheel into DuckDB's extension directory (offline, idempotent), then runs the
emulator in memory. The real `google-cloud-bigquery` client talks to it over REST.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from .gcs_server import free_port

# Against a stand-in, a 500 is a bug to see at once, not something to retry for ten minutes.
RETRY = bigquery.DEFAULT_RETRY.with_deadline(15)


class BigQueryEmulator:
    def __init__(self, port: int | None = None, log_path: pathlib.Path | None = None) -> None:
        self.port = port or free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> BigQueryEmulator:
        log = self._log_path.open("ab") if self._log_path else tempfile.TemporaryFile()  # noqa: SIM115 - the child keeps it
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_stack.bigquery_server",
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the BigQuery emulator exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)  # waiting for a subprocess to listen, bounded by the deadline
        self.stop()
        raise RuntimeError(f"the BigQuery emulator did not answer within {timeout}s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def client(self, project: str = "local-stack") -> bigquery.Client:
        return bigquery.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )

    def __enter__(self) -> BigQueryEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


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
