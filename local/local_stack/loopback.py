"""A server the local stack runs as a subprocess on loopback: started, waited for until it answers a
health URL, stopped. fake-gcs-server and the BigQuery stand-in differ only in their command line."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Self


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackServer:
    name = "server"
    health_path = "/"
    start_timeout = 20.0

    def __init__(self, port: int | None = None, log_path: pathlib.Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The subprocess's environment (None: this process's)."""
        return None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float | None = None) -> Self:
        timeout = timeout or self.start_timeout
        command = self.command()
        log = self._log_path.open("ab") if self._log_path else tempfile.TemporaryFile()  # noqa: SIM115 - the child keeps it
        self._process = subprocess.Popen(command, stdout=log, stderr=log, env=self.environment())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode}")
            try:
                self.probe()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)  # waiting for a subprocess to listen, bounded by the deadline
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s")

    def probe(self) -> None:
        """Raises OSError until the server answers its health URL."""
        with urllib.request.urlopen(f"{self.url}{self.health_path}", timeout=1):
            pass

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
