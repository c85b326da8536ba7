"""The Kubernetes API for what kopf does not do for us: deleting a finished resource whose
ttlSecondsAfterFinished has passed. Everything else (watches, status patches, Events) is kopf's.

The official client, configured as kopf configures itself: in-cluster service account, else the
kubeconfig (`KUBECONFIG`). It is synchronous, so callers run it in a worker thread.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ..api import GROUP, PLURAL, VERSION
from .errors import AdapterError

USER_AGENT = "batch-inference-operator"
TIMEOUT = 30.0


class Kube:
    def __init__(self) -> None:
        self._api: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
            api_client.user_agent = USER_AGENT
            self._api = client.CustomObjectsApi(api_client)
        return self._api

    def delete_job(self, namespace: str, name: str, uid: str) -> bool:
        """Delete this BatchInferenceJob, only if it is still the object with this uid (a resource re-created
        under the same name is never deleted in its place). False: it is gone, or another has its name."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self.api.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=options, _request_timeout=TIMEOUT
            )
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise AdapterError(
                f"deleting {namespace}/{name} failed: {error.status} {error.reason}", retryable=True, code=error.status
            ) from None
        except (OSError, config.ConfigException) as error:
            raise AdapterError(f"deleting {namespace}/{name} failed: {error}", retryable=True) from None
        return True
