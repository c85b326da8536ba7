"""Every use of kmock's private parts, in one place, so a kmock upgrade touches this file only.

kmock (pinned 0.8) serves HTTP, discovery, Status errors, a request log and a DSL for injecting
faults, but the points a subclass needs are private: the request handler (`_handle`), the error
renderer (`_render_error`), the discovery answers (`_serve_version`, `_serve_server_version`), the
log of requests (`_requests`), the reactions added so far (`_payloads`), and the aiohttp request
behind a `kmock.Request`. `HookedScaffold` overrides those and turns them into public hooks;
`client_gone` tells a streaming answer that its client went away. Nothing else in the package
reaches into kmock beyond its public names.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp.web
import attrs
import kmock

# kmock's path parser reads this path as a namespace prefix missing its name, and fails.
_UNPARSABLE_PATH = "/api/v1/namespaces"


@attrs.define(kw_only=True)
class HookedScaffold(kmock.KubernetesScaffold):
    """kmock's Kubernetes scaffold with public hooks in place of its private override points.

    A subclass answers resource paths in `serve_resource` (and says which paths those are in
    `serves_resource`), and may override `render_own_error`, `serve_group_version` and
    `serve_server_version`; the default of each is kmock's own behaviour.
    """

    _own_reactions: int = attrs.field(default=0, init=False)

    # ------------------------------------------------------------ hooks for the subclass

    def serves_resource(self, path: str) -> bool:
        """Whether `serve_resource` answers this path."""
        return False

    async def serve_resource(self, request: kmock.Request) -> kmock.Response:
        raise NotImplementedError

    def render_own_error(self, exc: Exception) -> aiohttp.web.StreamResponse | None:
        """The answer to an exception raised while serving, or None to leave it to kmock."""
        return None

    async def serve_group_version(self, request: kmock.Request) -> kmock.Payload:
        """`/api/V` and `/apis/G/V`: the group version's APIResourceList."""
        return await super()._serve_version(request)

    async def serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        """`/version`."""
        return await super()._serve_server_version(request)

    def remember_own_reactions(self) -> None:
        """Call once the subclass has added its reactions: any added later are a test's own."""
        self._own_reactions = len(self._payloads)

    @property
    def request_log(self) -> list[kmock.Request]:
        """Every request served so far, oldest first (for assertions on what a client did)."""
        return list(self._requests)

    # ------------------------------------------------------------ kmock's private override points

    async def _handle(self, request: kmock.Request) -> Any:
        """kmock matches a request against each reaction by scanning every request served so far, which
        grows quadratically with traffic. While a test has added no reaction of its own, resource paths
        are served directly; with one (an injected fault, say) kmock's matching decides as usual."""
        if len(self._payloads) == self._own_reactions and self.serves_resource(request.url.path):
            return await (await self.serve_resource(request))(request)
        return await super()._handle(request)

    async def __call__(self, raw_request: Any) -> Any:
        """kmock's path parser reads `/api/v1/namespaces` as a namespace prefix missing its name and fails;
        that one path (list, watch and create of namespaces) is parsed and served here instead."""
        if raw_request.path.rstrip("/") != _UNPARSABLE_PATH:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        request = kmock.Request(
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
        return await (await self.serve_resource(request))(request)

    async def _render_error(self, exc: Exception) -> Any:
        rendered = self.render_own_error(exc)
        return rendered if rendered is not None else await super()._render_error(exc)

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        return await self.serve_group_version(request)

    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return await self.serve_server_version(request)


def client_gone(request: kmock.Request) -> bool:
    """Whether the client of a (streaming) request has disconnected, or was never connected."""
    transport = request._raw_request.transport if request._raw_request is not None else None
    return transport is None or transport.is_closing()


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None
