"""What the local stack does on a cluster it did not make (a real control plane, kind, minikube):
install the BatchInferenceJob CRD with the kubernetes client and wait until it is served, and tell
when an operator has started watching."""

from __future__ import annotations

import pathlib
import time
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from batch_inference_operator import crd

CRD_NAME = "batchinferencejobs.batchinference.dev"


def api_client(kubeconfig: pathlib.Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


def install_crd(kubeconfig: pathlib.Path, timeout: float = 30.0) -> None:
    """Create or update the generated CRD and wait for its Established condition."""
    body: dict[str, Any] = crd.build_crd()
    with api_client(kubeconfig) as client:
        extensions = kubernetes.client.ApiextensionsV1Api(client)
        try:
            extensions.create_custom_resource_definition(body)
        except ApiException as error:
            if error.status != 409:
                raise
            current = extensions.read_custom_resource_definition(CRD_NAME)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            extensions.replace_custom_resource_definition(CRD_NAME, body)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conditions = extensions.read_custom_resource_definition(CRD_NAME).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
            time.sleep(0.1)  # the API server establishes a CRD asynchronously; bounded by the deadline
    raise TimeoutError(f"the CRD {CRD_NAME} was not established within {timeout}s")


def kubeconfig_server(kubeconfig: pathlib.Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == current["context"]["cluster"])
    return str(cluster["cluster"]["server"])


def watchers(kubeconfig: pathlib.Path, resource: str = "batchinferencejobs") -> int:
    """Open WATCH requests on `resource`, from the API server's own metrics: how the stack knows an
    operator has started watching without reading its log. Needs read access to /metrics."""
    with api_client(kubeconfig) as client:
        method, url, headers, _, _ = client.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        response = client.call_api(method, url, header_params=headers)
        response.read()
        text = response.data.decode()
    total = 0
    for line in text.splitlines():
        watching = 'verb="WATCH"' in line and f'resource="{resource}"' in line
        if line.startswith("apiserver_longrunning_requests{") and watching:
            total += int(float(line.rsplit(" ", 1)[-1]))
    return total
