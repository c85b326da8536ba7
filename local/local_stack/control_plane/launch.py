"""A real control plane on loopback, as controller-runtime's envtest starts one: etcd and
kube-apiserver built from Go modules, self-signed serving certificates, token authentication for an
admin and limited users, RBAC authorization and service-account token signing.

There is no controller manager and no scheduler: nothing here runs Pods, and namespaces are never
finalized after deletion. Everything an operator does through the API is real.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..loopback import LoopbackServer, free_port
from .pki import Pki, write_pki

BUILD_SCRIPT = pathlib.Path(__file__).with_name("build.sh")
ADMIN = "admin"


class ControlPlaneUnavailable(RuntimeError):
    """The binaries could not be built (no Go, no module proxy) or did not start."""


def _run_build_script(timeout: float, check_only: bool) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    if bash is None:
        raise ControlPlaneUnavailable("bash is needed to build the control plane")
    env = {**os.environ, "BIJ_CONTROL_PLANE_CHECK_ONLY": "1"} if check_only else None
    return subprocess.run(
        [bash, str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def build_binaries(timeout: float = 3600) -> pathlib.Path:
    """The directory holding kube-apiserver, etcd and helm: built once per version, then cached."""
    result = _run_build_script(timeout, check_only=False)
    if result.returncode != 0:
        raise ControlPlaneUnavailable(f"building the control plane failed:\n{result.stderr[-4000:]}")
    return pathlib.Path(result.stdout.strip().splitlines()[-1])


def cached_binaries() -> pathlib.Path | None:
    """The binaries if they are already built (no build is started)."""
    result = _run_build_script(60, check_only=True)
    return pathlib.Path(result.stdout.strip()) if result.returncode == 0 else None


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_hex(16))


class Etcd(LoopbackServer):
    name = "etcd"
    health_path = "/health"
    start_timeout = 30.0

    def __init__(self, binary: pathlib.Path, data_dir: pathlib.Path, log_path: pathlib.Path) -> None:
        super().__init__(log_path=log_path)
        self.binary = binary
        self.data_dir = data_dir
        self.peer_port = free_port()

    def command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            str(self.binary),
            "--name=default",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync=true",  # a test's data need not survive a power cut
            "--log-level=warn",
        ]


class KubeApiServer(LoopbackServer):
    name = "kube-apiserver"
    start_timeout = 90.0

    def __init__(
        self,
        binary: pathlib.Path,
        etcd_url: str,
        pki: Pki,
        token_file: pathlib.Path,
        admin: User,
        log_path: pathlib.Path,
    ) -> None:
        super().__init__(log_path=log_path)
        self.url = f"https://127.0.0.1:{self.port}"
        self.binary = binary
        self.etcd_url = etcd_url
        self.pki = pki
        self.token_file = token_file
        self.admin = admin
        self.ssl_context = ssl.create_default_context(cafile=str(pki.ca_cert))

    def command(self) -> list[str]:
        issuer = "https://kubernetes.default.svc.cluster.local"
        return [
            str(self.binary),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={self.pki.serving_cert}",
            f"--tls-private-key-file={self.pki.serving_key}",
            f"--token-auth-file={self.token_file}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={issuer}",
            f"--service-account-key-file={self.pki.service_account_public_key}",
            f"--service-account-signing-key-file={self.pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # No token controller runs here, so Pods could not get their tokens mounted; nothing runs Pods.
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]

    def get(self, path: str, token: str | None = None) -> bytes:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token or self.admin.token}"}
        )
        with urllib.request.urlopen(request, timeout=5, context=self.ssl_context) as response:
            return response.read()

    def probe(self) -> None:
        if self.get("/readyz") != b"ok":
            raise OSError("not ready")


class ControlPlane:
    """etcd and kube-apiserver under `directory`, with kubeconfigs for each user."""

    def __init__(self, directory: pathlib.Path, binaries: pathlib.Path, users: tuple[User, ...] = ()) -> None:
        self.directory = directory
        self.binaries = binaries
        self.admin = User(ADMIN, ("system:masters",))
        self.users = {user.name: user for user in (self.admin, *users)}
        self.etcd: Etcd | None = None
        self.api: KubeApiServer | None = None

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def start(self) -> ControlPlane:
        self.directory.mkdir(parents=True, exist_ok=True)
        pki = write_pki(self.directory / "pki")
        token_file = self.directory / "tokens.csv"
        token_file.write_text(
            "".join(f'{u.token},{u.name},{u.name},"{",".join(u.groups)}"\n' for u in self.users.values())
        )
        token_file.chmod(0o600)
        try:
            self.etcd = Etcd(self.binaries / "etcd", self.directory / "etcd", self.directory / "etcd.log").start()
            self.api = KubeApiServer(
                self.binaries / "kube-apiserver",
                self.etcd.url,
                pki,
                token_file,
                self.admin,
                self.directory / "kube-apiserver.log",
            ).start()
        except RuntimeError as error:
            self.stop()
            raise ControlPlaneUnavailable(f"{error}; see {self.directory}") from error
        for user in self.users.values():
            self.write_kubeconfig(self.kubeconfig(user.name), user.token)
        return self

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        if self.etcd is not None:
            self.etcd.stop()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def kubeconfig(self, user: str = ADMIN) -> pathlib.Path:
        return self.directory / f"kubeconfig-{user}"

    def write_kubeconfig(self, path: pathlib.Path, token: str, namespace: str = "default") -> pathlib.Path:
        assert self.api is not None
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "control-plane",
                    "cluster": {"server": self.url, "certificate-authority": str(self.api.pki.ca_cert)},
                }
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "control-plane",
                    "context": {"cluster": "control-plane", "user": "user", "namespace": namespace},
                }
            ],
            "current-context": "control-plane",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path
