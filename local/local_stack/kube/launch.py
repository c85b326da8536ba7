"""Start the Kubernetes API server on loopback with our CRD, and write a kubeconfig for it.

The only module of `local_stack.kube` that knows the operator (it installs the BatchInferenceJob
CRD the operator generates); the rest of the package serves whatever CRDs it is given.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import kmock
import yaml

from batch_inference_operator import crd

from .server import KubeApiServer


def kubeconfig_for(url: str) -> dict[str, Any]:
    """A kubeconfig that kubectl, kopf and the kubernetes client all accept; the token is not checked."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local-stack", "cluster": {"server": url}}],
        "users": [{"name": "local-stack", "user": {"token": "local-stack"}}],
        "contexts": [
            {
                "name": "local-stack",
                "context": {"cluster": "local-stack", "user": "local-stack", "namespace": "default"},
            }
        ],
        "current-context": "local-stack",
    }


def write_kubeconfig(path: pathlib.Path, url: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig_for(url), sort_keys=False))
    return path


@contextlib.asynccontextmanager
async def running_kube_api(host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[KubeApiServer]:
    """The server with the BatchInferenceJob CRD installed, listening until the context exits."""
    async with KubeApiServer() as server, kmock.Server(server, host=host, port=port):
        server.add_crd(crd.build_crd())
        yield server


def server_url(server: KubeApiServer) -> str:
    """The base URL clients use, without a trailing slash."""
    return str(server.url).rstrip("/")
