"""Fixtures of the real-control-plane tier: one etcd and kube-apiserver for the session (built from Go
modules on first use and cached, see local/local_stack/control_plane/build.sh), the BatchInferenceJob
CRD installed in it, admin and limited-user kubeconfigs, a fresh namespace per test.

Loaded for every run as a plugin by tests/conftest.py; nothing starts unless a test asks for it."""

from __future__ import annotations

import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

LIMITED_USER = "alice"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from local_stack.control_plane.cluster import install_crd
    from local_stack.control_plane.launch import ControlPlane, User, build_binaries

    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), build_binaries(), users=(User(LIMITED_USER),))
    with plane:
        install_crd(plane.kubeconfig())
        yield plane


@pytest.fixture(scope="session")
def admin_kubeconfig(control_plane: Any) -> pathlib.Path:
    return control_plane.kubeconfig()


@pytest.fixture(scope="session")
def limited_kubeconfig(control_plane: Any) -> pathlib.Path:
    """A user with no RBAC grants of its own: tests grant exactly what they mean to."""
    return control_plane.kubeconfig(LIMITED_USER)


@pytest.fixture(scope="session")
def kube_client(admin_kubeconfig: pathlib.Path) -> Iterator[Any]:
    from local_stack.control_plane.cluster import api_client

    with api_client(admin_kubeconfig) as client:
        yield client


@pytest.fixture
def real_namespace(kube_client: Any) -> str:
    """A namespace of its own for one test (there is no namespace controller to delete it afterwards)."""
    import kubernetes

    name = f"t-{secrets.token_hex(4)}"
    kubernetes.client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
async def real_stack(gcs: Any, bigquery: Any, admin_kubeconfig: pathlib.Path, tmp_path: pathlib.Path) -> Any:
    """The local stack's emulators and the operator (a subprocess) on the real control plane."""
    from conftest import fast_stack

    async with fast_stack(tmp_path / "stack", gcs, bigquery, cluster=admin_kubeconfig) as running:
        yield running
