"""What clients discover before they touch a resource: `/version`, and the APIResourceList of a
group version. kmock's own answers say groupVersion "/v1" for the core group and list subresources
loosely; kubectl and kopf need them as a real apiserver gives them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from .errors import api_error
from .resources import ResourceType

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-local-stack", "platform": "linux/amd64"}


def server_version() -> dict[str, str]:
    return dict(SERVER_VERSION)


def api_resource_list(
    types: Iterable[ResourceType], path: str, verbs_of: Callable[[ResourceType], Iterable[str]]
) -> dict[str, Any]:
    """The APIResourceList for `/api/V` or `/apis/G/V`; a group version we do not serve is a 404."""
    parts = path.strip("/").split("/")
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    served = [t for t in types if t.group == group and t.version == version]
    if not served:
        raise api_error(404, "NotFound", f"the server could not find the requested resource ({group}/{version})")
    resources = []
    for rtype in served:
        resources.append(
            {
                "name": rtype.plural,
                "singularName": rtype.singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": sorted(verbs_of(rtype)),
                "shortNames": rtype.short_names,
                "categories": rtype.categories,
                "storageVersionHash": hashlib.sha256(rtype.qualified.encode()).hexdigest()[:12],
            }
        )
        if rtype.status_subresource:
            resources.append(
                {
                    "name": f"{rtype.plural}/status",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "apiVersion": "v1",
        "kind": "APIResourceList",
        "groupVersion": f"{group}/{version}".lstrip("/"),
        "resources": resources,
    }
