"""A Kubernetes API server for tests and the local stack, built on kmock.

kmock (by kopf's author) gives the HTTP server, discovery, Status errors, its request log and its
DSL for injecting faults. Its own object emulation is too loose for kopf and kubectl (no
resourceVersion, no status split, no selectors, no watch resumption), so this subclass serves the
resource paths itself with the semantics a real kube-apiserver has where clients depend on them:

- create: uid, creationTimestamp, generation, resourceVersion, namespace from the URL, generateName,
  201; the namespace must exist; names are validated;
- every write gets a new resourceVersion; a stale one is a 409; a no-op write is not a write;
- generation moves with spec only; the main resource ignores status and `/status` ignores the rest;
- merge patch, JSON patch (a failed `test` is a 422), PUT with a required resourceVersion;
- finalizers and deletionTimestamp; namespaces that cascade their deletion;
- list with kind, apiVersion and a resourceVersion; label and field selectors; limit/continue;
- watch from a resourceVersion (410 when too old), selector transitions, timeoutSeconds;
- server-side tables from the CRD's printer columns, for `kubectl get`;
- the CRD enforced on every write: schema, defaults, pruning or strict unknown fields, CEL rules;
- OpenAPI v3 documents generated from the CRD, so `kubectl apply` validates as on a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import rendering

from .kube import tables
from .kube.discovery import api_resource_list, server_version
from .kube.errors import JSON_HEADERS, ApiError, api_error, error_response, status_body
from .kube.openapi import openapi_document_at, openapi_root
from .kube.resources import CORE_TYPES, ResourceType, Route
from .kube.schema import Cause
from .kube.selectors import field_selector_matches, label_selector_matches
from .kube.tables import wants_table

# Watch history kept for resumption; older resourceVersions get 410 Gone, as after etcd compaction.
EVENT_HISTORY = 50_000

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class WatchEvent:
    rv: int
    rtype_key: tuple[str, str, str]
    type: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RESOURCE_PATH = re.compile(r"/api/[^/]+/.+|/apis/[^/]+/[^/]+/.+")


@attrs.define(kw_only=True)
class KubeApiServer(kmock.KubernetesScaffold):
    """kmock's scaffold plus a stateful, apiserver-faithful store for the declared resource types."""

    types: dict[tuple[str, str, str], ResourceType] = attrs.field(factory=dict, init=False)
    store: dict[tuple[tuple[str, str, str], str | None, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
    history: list[WatchEvent] = attrs.field(factory=list, init=False)
    _rv: itertools.count = attrs.field(factory=lambda: itertools.count(1000), init=False)
    _last_rv: int = attrs.field(default=999, init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    _own_reactions: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for rtype in CORE_TYPES:
            self.add_type(rtype)
        self.put_object("namespaces", {"metadata": {"name": "default"}})
        # Our resource paths: anything deeper than discovery (/api/V, /apis/G/V). User DSL reactions win.
        self.fallback[_RESOURCE_PATH] << self._serve_resource
        self.fallback["get /openapi/v3"] << self._serve_openapi_root
        self.fallback[re.compile(r"/openapi/v3/.+")] << self._serve_openapi
        self._own_reactions = len(self._payloads)

    async def _handle(self, request: rendering.Request) -> Any:
        """kmock matches a request against each reaction by scanning every request served so far, which
        grows quadratically with traffic. While a test has added no reaction of its own, resource paths
        are served directly; with one (an injected fault, say) kmock's matching decides as usual."""
        if len(self._payloads) == self._own_reactions and _RESOURCE_PATH.fullmatch(request.url.path):
            return await (await self._serve_resource(request))(request)
        return await super()._handle(request)

    # ------------------------------------------------------------ configuration

    def add_type(self, rtype: ResourceType) -> None:
        self.types[rtype.key] = rtype
        subresources = {"status"} if rtype.status_subresource else set()
        verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
        self.resources[f"{rtype.api_version}/{rtype.plural}"] = kmock.ResourceInfo(
            kind=rtype.kind,
            singular=rtype.singular,
            namespaced=rtype.namespaced,
            subresources=subresources,
            shortnames=set(rtype.short_names),
            categories=set(rtype.categories),
            verbs=verbs,
        )

    def add_crd(self, crd: dict[str, Any]) -> None:
        for rtype in ResourceType.from_crd(crd):
            self.add_type(rtype)

    def _find_type(self, plural_or_kind: str) -> ResourceType:
        for rtype in self.types.values():
            if plural_or_kind in (rtype.plural, rtype.kind, rtype.qualified):
                return rtype
        raise KeyError(plural_or_kind)

    def put_object(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Seed an object directly (tests, bootstrap), with the metadata a create would give it."""
        rtype = self._find_type(plural)
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        namespace = obj["metadata"].get("namespace") if rtype.namespaced else None
        self._stamp_new(rtype, obj)
        self._commit(rtype, namespace, obj["metadata"]["name"], obj, "ADDED", None)
        return obj

    @property
    def request_log(self) -> list[rendering.Request]:
        """Every request served so far, oldest first (for assertions on what a client did)."""
        return list(self._requests)

    def get_object(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rtype = self._find_type(plural)
        return self.store.get((rtype.key, namespace if rtype.namespaced else None, name))

    def list_objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rtype = self._find_type(plural)
        return [
            obj
            for (key, ns, _), obj in sorted(self.store.items(), key=lambda kv: (kv[0][1] or "", kv[0][2]))
            if key == rtype.key and (namespace is None or ns == namespace)
        ]

    async def __call__(self, raw_request: Any) -> Any:
        """kmock's path parser reads `/api/v1/namespaces` as a namespace prefix missing its name and fails;
        that one path (list, watch and create of namespaces) is parsed and served here instead."""
        if raw_request.path.rstrip("/") != "/api/v1/namespaces":
            return await super().__call__(raw_request)
        body = await raw_request.read()
        request = rendering.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=body.decode(errors="replace"),
            data=_json_or_none(body),
        )
        self._requests.append(request)
        return await (await self._serve_resource(request))(request)

    # ------------------------------------------------------------ discovery fixes

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        return server_version()

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        return api_resource_list(
            self.types.values(),
            request.url.path,
            lambda rtype: self.resources[f"{rtype.api_version}/{rtype.plural}"].verbs,
        )

    # ------------------------------------------------------------ errors

    async def _render_error(self, exc: Exception) -> Any:
        if isinstance(exc, ApiError):
            return aiohttp.web.json_response(status_body(exc), status=exc.status)
        return await super()._render_error(exc)

    # ------------------------------------------------------------ routing

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
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource not in (None, "status") or (subresource == "status" and not rtype.status_subresource):
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        return Route(rtype, namespace, name, subresource)

    async def _serve_resource(self, request: rendering.Request) -> kmock.Response:
        """Every answer carries its status explicitly: kmock's reaction object is shared between requests.
        Refusals are answers, not server errors, so they do not land in kmock's error list."""
        try:
            result = await self._dispatch(request)
        except ApiError as error:
            return kmock.Response(status=error.status, headers=JSON_HEADERS, payload=status_body(error))
        if isinstance(result, kmock.Response):
            return result
        return kmock.Response(status=200, headers=JSON_HEADERS, payload=result)

    async def _dispatch(self, request: rendering.Request) -> Any:
        route = self._route(request.url.path)
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        params = dict(request.params)
        accept = request.headers.get("Accept", "")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if method in ("POST", "PUT", "PATCH") and "json" not in content_type:
            raise api_error(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format "
                f"({content_type or 'none'}); this server speaks JSON only (no protobuf, no CBOR)",
            )
        if self._changed is None:
            self._changed = asyncio.Condition()
        if route.name is None:
            if method == "GET" and params.get("watch") in ("true", "1"):
                return kmock.Response(
                    status=200, headers=JSON_HEADERS, payload=self._watch(route, params, wants_table(accept), request)
                )
            if method == "GET":
                return self._list(route, params, accept)
            if method == "POST":
                return kmock.Response(
                    status=201, headers=JSON_HEADERS, payload=await self._create(route, request.data, params)
                )
            raise api_error(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if route.rtype.namespaced and route.namespace is None:
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            obj = self._existing(route)
            return tables.as_table(route.rtype, [obj], params, accept, self._last_rv) if wants_table(accept) else obj
        if method == "PATCH":
            return await self._patch(route, content_type, request.data, params)
        if method == "PUT":
            return await self._replace(route, request.data, params)
        if method == "DELETE":
            return await self._delete(route)
        raise api_error(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # ------------------------------------------------------------ reads

    def _key(self, route: Route, name: str | None = None) -> tuple[tuple[str, str, str], str | None, str]:
        return (route.rtype.key, route.namespace if route.rtype.namespaced else None, name or route.name or "")

    def _existing(self, route: Route) -> dict[str, Any]:
        obj = self.store.get(self._key(route))
        if obj is None:
            raise api_error(
                404,
                "NotFound",
                f'{route.rtype.qualified} "{route.name}" not found',
                {"name": route.name, "group": route.rtype.group, "kind": route.rtype.plural},
            )
        return obj

    def _matching(self, route: Route, params: dict[str, str]) -> list[dict[str, Any]]:
        found = []
        for (key, namespace, _), obj in self.store.items():
            if key != route.rtype.key or (route.namespace is not None and namespace != route.namespace):
                continue
            if label_selector_matches(
                params.get("labelSelector"), obj["metadata"].get("labels") or {}
            ) and field_selector_matches(params.get("fieldSelector"), obj):
                found.append(obj)
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def _list(self, route: Route, params: dict[str, str], accept: str) -> dict[str, Any]:
        items = self._matching(route, params)
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        metadata: dict[str, Any] = {"resourceVersion": str(self._last_rv)}
        if limit and start + limit < len(items):
            metadata["continue"] = str(start + limit)
            metadata["remainingItemCount"] = len(items) - start - limit
        if wants_table(accept):
            table = tables.as_table(route.rtype, page, params, accept, self._last_rv)
            table["metadata"].update(metadata)
            return table
        return {
            "apiVersion": route.rtype.api_version,
            "kind": f"{route.rtype.kind}List",
            "metadata": metadata,
            "items": page,
        }

    async def _watch(
        self, route: Route, params: dict[str, str], as_table: bool, request: rendering.Request
    ) -> AsyncIterator[Any]:
        assert self._changed is not None
        yield b""  # send the headers now, as the apiserver does, even if nothing happens for a while
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        since = params.get("resourceVersion") or "0"
        first_table = True

        def render(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal first_table
            if as_table:
                shown = tables.as_table(route.rtype, [obj], params, "", self._last_rv, with_columns=first_table)
                first_table = False
                return {"type": event_type, "object": shown}
            return {"type": event_type, "object": obj}

        if since == "0":
            cursor = self._last_rv
            for obj in self._matching(route, params):
                yield render("ADDED", obj)
        else:
            cursor = int(since)
            oldest = self.history[0].rv if self.history else self._last_rv + 1
            if cursor < oldest - 1 and len(self.history) >= EVENT_HISTORY:
                yield {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Expired",
                        "code": 410,
                        "message": f"too old resource version: {cursor} ({oldest})",
                    },
                }
                return
        while True:
            for event in self._events_after(cursor):
                cursor = event.rv
                shown = self._filter_event(route, params, event)
                if shown is not None:
                    yield render(*shown)
            async with self._changed:
                remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
                if remaining is not None and remaining <= 0:
                    return
                if self._last_rv <= cursor:
                    # Wake at least every second to notice a client that went away (a killed operator),
                    # so its stream does not linger until the server shuts down.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), min(remaining or 1.0, 1.0))
            transport = request._raw_request.transport if request._raw_request is not None else None
            if transport is None or transport.is_closing():
                return

    def _events_after(self, cursor: int) -> list[WatchEvent]:
        # History is ordered by rv; a binary search keeps many watchers cheap.
        low, high = 0, len(self.history)
        while low < high:
            middle = (low + high) // 2
            if self.history[middle].rv <= cursor:
                low = middle + 1
            else:
                high = middle
        return self.history[low:]

    def _filter_event(self, route: Route, params: dict[str, str], event: WatchEvent) -> tuple[str, dict] | None:
        """Selector transitions as the apiserver reports them: moving in is ADDED, moving out is DELETED."""
        if event.rtype_key != route.rtype.key:
            return None
        if route.namespace is not None and event.obj["metadata"].get("namespace") != route.namespace:
            return None

        def matches(obj: dict[str, Any] | None) -> bool:
            return (
                obj is not None
                and label_selector_matches(params.get("labelSelector"), obj["metadata"].get("labels") or {})
                and field_selector_matches(params.get("fieldSelector"), obj)
            )

        now, before = matches(event.obj), matches(event.previous)
        if event.type == "MODIFIED":
            if now and before:
                return ("MODIFIED", event.obj)
            if now:
                return ("ADDED", event.obj)
            if before:
                return ("DELETED", event.obj)
            return None
        return (event.type, event.obj) if now else None

    # ------------------------------------------------------------ writes

    def _stamp_new(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        metadata = obj.setdefault("metadata", {})
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        if rtype.has_generation:
            metadata["generation"] = 1
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(transient, None)
        if rtype.plural == "namespaces":
            obj["status"] = {"phase": "Active"}

    def _commit(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        obj: dict[str, Any] | None,
        event_type: str,
        previous: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Write (or delete, when obj is None) with a fresh resourceVersion, and tell the watchers."""
        rv = next(self._rv)
        self._last_rv = rv
        key = (rtype.key, namespace, name)
        if obj is None:
            assert previous is not None
            shown = copy.deepcopy(previous)
            shown["metadata"]["resourceVersion"] = str(rv)
            del self.store[key]
        else:
            obj["metadata"]["resourceVersion"] = str(rv)
            self.store[key] = obj
            shown = obj
        self.history.append(WatchEvent(rv, rtype.key, event_type, shown, previous))
        if len(self.history) > EVENT_HISTORY + EVENT_HISTORY // 10:  # trim in batches: cheap on average
            del self.history[: len(self.history) - EVENT_HISTORY]
        if self._changed is not None:
            asyncio.get_running_loop().create_task(self._notify())
        return shown

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _admit(
        self, route: Route, obj: dict[str, Any], old: dict[str, Any] | None, params: dict[str, str]
    ) -> dict[str, Any]:
        """Schema, defaults, pruning and CEL: refuse as the apiserver would, naming the fields."""
        schema = route.rtype.schema
        if schema is None:
            return obj
        mode = params.get("fieldValidation", "Warn")
        stored, unknown, causes = schema.admit(obj, old, strict=(mode == "Strict"))
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName", "")
        if unknown and mode == "Strict":
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise api_error(
                400,
                "BadRequest",
                f'{route.rtype.kind} in version "{route.rtype.version}" cannot be '
                f"handled as a {route.rtype.kind}: strict decoding error: {listed}",
            )
        if causes:
            self._refuse(route, name, causes)
        return stored

    def _refuse(self, route: Route, name: str, causes: list[Cause]) -> None:
        rendered = ", ".join(cause.render() for cause in causes)
        kind = f"{route.rtype.kind}.{route.rtype.group}" if route.rtype.group else route.rtype.kind
        raise api_error(
            422,
            "Invalid",
            f'{kind} "{name}" is invalid: {"[" + rendered + "]" if len(causes) > 1 else rendered}',
            {
                "name": name,
                "group": route.rtype.group,
                "kind": route.rtype.kind,
                "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
            },
        )

    def _check_name(self, route: Route, name: str) -> None:
        pattern = _DNS_LABEL if route.rtype.plural == "namespaces" else _DNS_SUBDOMAIN
        limit = 63 if route.rtype.plural == "namespaces" else 253
        if not pattern.match(name) or len(name) > limit:
            self._refuse(
                route,
                name,
                [
                    Cause(
                        "metadata.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of '
                        "lower case alphanumeric characters, '-' or '.'",
                    )
                ],
            )

    async def _create(self, route: Route, body: Any, params: dict[str, str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "the body of the request was not a JSON object")
        rtype = route.rtype
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        if obj["kind"] != rtype.kind:
            raise api_error(400, "BadRequest", f"the kind {obj['kind']!r} does not match the resource {rtype.plural!r}")
        if rtype.namespaced:
            if metadata.get("namespace") not in (None, route.namespace):
                raise api_error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            metadata["namespace"] = route.namespace
            namespace = self.store.get((("", "v1", "namespaces"), None, route.namespace or ""))
            if namespace is None:
                raise api_error(
                    404,
                    "NotFound",
                    f'namespaces "{route.namespace}" not found',
                    {"name": route.namespace, "kind": "namespaces"},
                )
            if namespace["status"].get("phase") == "Terminating":
                raise api_error(
                    403,
                    "Forbidden",
                    f"unable to create new content in namespace {route.namespace} because it is being terminated",
                )
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                self._refuse(
                    route,
                    "",
                    [Cause("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")],
                )
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        name = metadata["name"]
        self._check_name(route, name)
        if rtype.status_subresource and rtype.schema is not None:
            obj.pop("status", None)
        self._stamp_new(rtype, obj)
        obj = self._admit(route, obj, None, params)
        key = self._key(route, name)
        if key in self.store:
            raise api_error(
                409,
                "AlreadyExists",
                f'{rtype.qualified} "{name}" already exists',
                {"name": name, "group": rtype.group, "kind": rtype.plural},
            )
        return self._commit(rtype, key[1], name, obj, "ADDED", None)

    async def _patch(self, route: Route, content_type: str, body: Any, params: dict[str, str]) -> dict[str, Any]:
        old = self._existing(route)
        if content_type == "application/json-patch+json":
            if not isinstance(body, list):
                raise api_error(400, "BadRequest", "a JSON patch must be a list of operations")
            try:
                patched = jsonpatch.apply_patch(copy.deepcopy(old), body)
            except jsonpatch.JsonPatchTestFailed as error:
                raise api_error(
                    422, "Invalid", f"the server rejected our request due to an error in our request: {error}"
                ) from None
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                raise api_error(422, "Invalid", f"the server rejected our request: {error}") from None
        elif content_type == "application/merge-patch+json" or (
            content_type == "application/strategic-merge-patch+json" and route.rtype.schema is None
        ):
            if not isinstance(body, dict):
                raise api_error(400, "BadRequest", "a merge patch must be a JSON object")
            patched = _merge_patch(copy.deepcopy(old), body)
        else:
            raise api_error(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                "accepted media types include: application/json-patch+json, "
                "application/merge-patch+json",
            )
        return self._update(route, old, patched, params)

    async def _replace(self, route: Route, body: Any, params: dict[str, str]) -> dict[str, Any]:
        old = self._existing(route)
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "the body of the request was not a JSON object")
        if not body.get("metadata", {}).get("resourceVersion") and route.rtype.schema is not None:
            self._refuse(
                route,
                route.name or "",
                [
                    Cause(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return self._update(route, old, copy.deepcopy(body), params)

    def _update(self, route: Route, old: dict[str, Any], new: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        rtype = route.rtype
        old_meta, new_meta = old["metadata"], new.setdefault("metadata", {})
        requested_rv = new_meta.get("resourceVersion")
        if requested_rv and requested_rv != old_meta["resourceVersion"]:
            raise api_error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rtype.qualified} "{route.name}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                {"name": route.name, "group": rtype.group, "kind": rtype.plural},
            )
        # What the client may not change, whatever it sent.
        for fixed in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ):
            if fixed in old_meta:
                new_meta[fixed] = old_meta[fixed]
            else:
                new_meta.pop(fixed, None)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if rtype.status_subresource:
            if route.subresource == "status":
                new = {**copy.deepcopy(old), "status": new.get("status")}
                if new["status"] is None:
                    del new["status"]
            elif "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if old_meta.get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                self._refuse(
                    route,
                    route.name or "",
                    [
                        Cause(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted",
                        )
                    ],
                )
        new = self._admit(route, new, old, params)
        if rtype.has_generation and _without(new, "metadata", "status") != _without(old, "metadata", "status"):
            new["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        if new == old:
            return old  # a no-op write is not a write: no new resourceVersion, no watch event
        namespace = route.namespace if rtype.namespaced else None
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self.store[(rtype.key, namespace, route.name or "")] = new
            result = self._commit(rtype, namespace, route.name or "", None, "DELETED", new)
            self._finish_namespace_if_empty(namespace)
            return result
        return self._commit(rtype, namespace, route.name or "", new, "MODIFIED", old)

    async def _delete(self, route: Route) -> dict[str, Any]:
        obj = self._existing(route)
        namespace = route.namespace if route.rtype.namespaced else None
        if route.rtype.plural == "namespaces":
            return self._delete_namespace(obj)
        return self._delete_object(route.rtype, namespace, obj)

    def _delete_object(self, rtype: ResourceType, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(rtype, namespace, name, marked, "MODIFIED", obj)
        result = self._commit(rtype, namespace, name, None, "DELETED", obj)
        self._finish_namespace_if_empty(namespace)
        return result

    def _delete_namespace(self, namespace: dict[str, Any]) -> dict[str, Any]:
        """Mark it Terminating and delete its content (finalizers honoured); it goes once empty."""
        name = namespace["metadata"]["name"]
        rtype = self.types[("", "v1", "namespaces")]
        if namespace["status"].get("phase") != "Terminating":
            terminating = copy.deepcopy(namespace)
            terminating["status"]["phase"] = "Terminating"
            terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
            namespace = self._commit(rtype, None, name, terminating, "MODIFIED", namespace)
        for (key, ns, _), obj in list(self.store.items()):
            if ns == name:
                self._delete_object(self.types[key], ns, obj)
        self._finish_namespace_if_empty(name)
        return namespace

    def _finish_namespace_if_empty(self, namespace: str | None) -> None:
        if namespace is None:
            return
        rtype = self.types[("", "v1", "namespaces")]
        ns_obj = self.store.get((rtype.key, None, namespace))
        if ns_obj is None or ns_obj["status"].get("phase") != "Terminating":
            return
        if not any(ns == namespace for (_, ns, _) in self.store):
            self._commit(rtype, None, namespace, None, "DELETED", ns_obj)

    # ------------------------------------------------------------ OpenAPI v3 for kubectl

    async def _serve_openapi_root(self, request: rendering.Request) -> rendering.Payload:
        return openapi_root(self.types.values())

    async def _serve_openapi(self, request: rendering.Request) -> kmock.Response:
        prefix = request.url.path.removeprefix("/openapi/v3/").strip("/")
        document = openapi_document_at(self.types.values(), prefix)
        if document is None:
            return error_response(api_error(404, "NotFound", f"no OpenAPI document for {prefix}"))
        return kmock.Response(status=200, headers=JSON_HEADERS, payload=document)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result
