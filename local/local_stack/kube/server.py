"""`KubeApiServer`: kmock's scaffold serving our resource types. It routes a request to its type,
namespace, name and subresource, and dispatches it to the read and write verbs (`reads`, `writes`)
over one `ObjectStore`; discovery, OpenAPI and tables come from their own modules. kmock's private
parts are reached only through `kmock_private.HookedScaffold`.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp.web
import attrs
import kmock

from . import reads, writes
from .bodies import decode_body
from .discovery import api_resource_list, server_version
from .errors import JSON_HEADERS, ApiError, api_error, error_response, status_body
from .kmock_private import HookedScaffold, client_gone
from .openapi import openapi_document_at, openapi_root
from .resources import CORE_TYPES, ResourceType, ResourceTypes, Route
from .selectors import check_field_labels
from .store import ObjectStore
from .tables import wants_table

# Resource paths: anything deeper than discovery (/api/V, /apis/G/V).
RESOURCE_PATH = re.compile(r"/api/[^/]+/.+|/apis/[^/]+/[^/]+/.+")
_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
_WRITES = ("POST", "PUT", "PATCH")
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _not_found() -> ApiError:
    return api_error(404, "NotFound", "the server could not find the requested resource")


def _method_not_allowed() -> ApiError:
    return api_error(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


@attrs.define(kw_only=True)
class KubeApiServer(HookedScaffold):
    """kmock's scaffold plus a stateful, apiserver-faithful store for the declared resource types."""

    types: ResourceTypes = attrs.field(factory=ResourceTypes, init=False)
    store: ObjectStore = attrs.field(
        default=attrs.Factory(lambda self: ObjectStore(self.types), takes_self=True), init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for rtype in CORE_TYPES:
            self.add_type(rtype)
        self.put_object("namespaces", {"metadata": {"name": "default"}})
        # Our resource paths and the OpenAPI documents. User DSL reactions win.
        self.fallback[RESOURCE_PATH] << self.serve_resource
        self.fallback["get /openapi/v3"] << self._serve_openapi_root
        self.fallback["get /openapi/v2"] << self._serve_openapi_v2
        self.fallback[re.compile(r"/openapi/v3/.+")] << self._serve_openapi
        self.remember_own_reactions()

    # ------------------------------------------------------------ configuration and test helpers

    def add_type(self, rtype: ResourceType) -> None:
        self.types.add(rtype)
        self.resources[f"{rtype.api_version}/{rtype.plural}"] = kmock.ResourceInfo(
            kind=rtype.kind,
            singular=rtype.singular,
            namespaced=rtype.namespaced,
            subresources={"status"} if rtype.status_subresource else set(),
            shortnames=set(rtype.short_names),
            categories=set(rtype.categories),
            verbs=set(_VERBS),
        )

    def add_crd(self, crd: dict[str, Any]) -> None:
        for rtype in ResourceType.from_crd(crd):
            self.add_type(rtype)

    def put_object(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Seed an object directly (tests, bootstrap), with the metadata a create would give it."""
        return writes.seed(self.store, self.types.find(plural), obj)

    def get_object(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.store.get_object(plural, namespace, name)

    def list_objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.list_objects(plural, namespace)

    # ------------------------------------------------------------ hooks kmock calls

    def serves_resource(self, path: str) -> bool:
        return RESOURCE_PATH.fullmatch(path) is not None

    async def serve_resource(self, request: kmock.Request) -> kmock.Response:
        """Every answer carries its status explicitly: kmock's reaction object is shared between requests.
        Refusals are answers, not server errors, so they do not land in kmock's error list."""
        try:
            result = self._dispatch(request)
        except ApiError as error:
            return error_response(error)
        if isinstance(result, kmock.Response):
            return result
        return kmock.Response(status=200, headers=JSON_HEADERS, payload=result)

    def render_own_error(self, exc: Exception) -> aiohttp.web.StreamResponse | None:
        if isinstance(exc, ApiError):
            return aiohttp.web.json_response(status_body(exc), status=exc.status)
        return None

    async def serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return server_version()

    async def serve_group_version(self, request: kmock.Request) -> kmock.Payload:
        """kmock says groupVersion "/v1" for the core group and lists subresources loosely; ours does not."""
        return api_resource_list(
            self.types,
            request.url.path,
            lambda rtype: self.resources[f"{rtype.api_version}/{rtype.plural}"].verbs,
        )

    # ------------------------------------------------------------ routing and dispatch

    def _route(self, path: str) -> Route:
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.types.get((group, version, rest[2]))
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rtype = self.types.get((group, version, rest[0]))
        if rtype is None or len(rest) > 3:
            raise _not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource not in (None, "status") or (subresource == "status" and not rtype.status_subresource):
            raise _not_found()
        return Route(rtype, namespace, name, subresource)

    def _dispatch(self, request: kmock.Request) -> Any:
        route = self._route(request.url.path)
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        params = dict(request.params)
        accept = request.headers.get("Accept", "")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        raw = request.body or b""
        deleting = method == "DELETE" and raw.strip()  # DeleteOptions, when sent
        body = decode_body(content_type, raw, request.data) if method in _WRITES or deleting else None
        self.store.start_notifying()
        if route.name is None:
            if method == "GET":
                check_field_labels(params.get("fieldSelector"), route.rtype.field_labels)
            if method == "GET" and params.get("watch") in ("true", "1"):
                events = reads.watch_stream(
                    self.store, route, params, wants_table(accept), lambda: client_gone(request)
                )
                return kmock.Response(status=200, headers=JSON_HEADERS, payload=events)
            if method == "GET":
                return reads.read_list(self.store, route, params, accept)
            if method == "POST":
                created = writes.create(self.store, route, body, params)
                return kmock.Response(status=201, headers=JSON_HEADERS, payload=created)
            raise _method_not_allowed()
        if route.rtype.namespaced and route.namespace is None:
            raise _not_found()
        if method == "GET":
            return reads.read_one(self.store, route, params, accept)
        if method == "PATCH":
            return writes.patch(self.store, route, content_type, body, params)
        if method == "PUT":
            return writes.replace(self.store, route, body, params)
        if method == "DELETE":
            return writes.delete(self.store, route, body, params)
        raise _method_not_allowed()

    # ------------------------------------------------------------ OpenAPI v3 for kubectl

    async def _serve_openapi_v2(self, request: kmock.Request) -> kmock.Response:
        """An empty OpenAPI v2 document (protobuf, as kubectl asks). kubectl falls back to v2 for a kind
        the v3 documents lack; finding none there either, it skips validation and its REST mapping
        answers "no matches for kind ... ensure CRDs are installed first", as against a real cluster."""
        return kmock.Response(status=200, headers={"Content-Type": OPENAPI_V2_PROTOBUF}, payload=b"")

    async def _serve_openapi_root(self, request: kmock.Request) -> kmock.Payload:
        return openapi_root(self.types)

    async def _serve_openapi(self, request: kmock.Request) -> kmock.Response:
        prefix = request.url.path.removeprefix("/openapi/v3/").strip("/")
        document = openapi_document_at(self.types, prefix)
        if document is None:
            return error_response(api_error(404, "NotFound", f"no OpenAPI document for {prefix}"))
        return kmock.Response(status=200, headers=JSON_HEADERS, payload=document)
