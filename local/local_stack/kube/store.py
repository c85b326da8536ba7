"""The objects, their resourceVersions and the history of changes that watches replay and follow.

Every write goes through `ObjectStore.commit`, which gives it the next resourceVersion, records a
watch event and wakes the watchers. The store knows nothing of HTTP or of kmock: the read and write
verbs (`reads`, `writes`) decide what to store and how to show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from .errors import api_error
from .resources import ResourceType, ResourceTypes, Route, TypeKey
from .selectors import selected

# Watch history kept for resumption; older resourceVersions get 410 Gone, as after etcd compaction.
EVENT_HISTORY = 50_000

ObjectKey = tuple[TypeKey, str | None, str]  # (type, namespace or None when cluster-scoped, name)
Render = Callable[[str, dict[str, Any]], Any]


@dataclass
class WatchEvent:
    rv: int
    rtype_key: TypeKey
    type: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None


class ObjectStore:
    """All stored objects of all served types, and the recent history of their changes."""

    def __init__(self, types: ResourceTypes) -> None:
        self.types = types
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.history: list[WatchEvent] = []
        self.last_rv = 999
        self._rv = itertools.count(1000)
        self._changed: asyncio.Condition | None = None

    def start_notifying(self) -> None:
        """From the first request on (in the server's event loop), commits wake the watchers."""
        if self._changed is None:
            self._changed = asyncio.Condition()

    # ------------------------------------------------------------ reads

    def key(self, route: Route, name: str | None = None) -> ObjectKey:
        return (route.rtype.key, route.namespace if route.rtype.namespaced else None, name or route.name or "")

    def existing(self, route: Route) -> dict[str, Any]:
        obj = self.objects.get(self.key(route))
        if obj is None:
            raise api_error(
                404,
                "NotFound",
                f'{route.rtype.qualified} "{route.name}" not found',
                {"name": route.name, "group": route.rtype.group, "kind": route.rtype.plural},
            )
        return obj

    def matching(self, route: Route, params: dict[str, str]) -> list[dict[str, Any]]:
        """The route's objects that pass the request's selectors, by namespace and name."""
        found = []
        for (key, namespace, _), obj in self.objects.items():
            if key != route.rtype.key or (route.namespace is not None and namespace != route.namespace):
                continue
            if selected(params, obj):
                found.append(obj)
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def get_object(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rtype = self.types.find(plural)
        return self.objects.get((rtype.key, namespace if rtype.namespaced else None, name))

    def list_objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rtype = self.types.find(plural)
        return [
            obj
            for (key, ns, _), obj in sorted(self.objects.items(), key=lambda kv: (kv[0][1] or "", kv[0][2]))
            if key == rtype.key and (namespace is None or ns == namespace)
        ]

    # ------------------------------------------------------------ the one way to write

    def commit(
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
        self.last_rv = rv
        key = (rtype.key, namespace, name)
        if obj is None:
            assert previous is not None
            shown = copy.deepcopy(previous)
            shown["metadata"]["resourceVersion"] = str(rv)
            del self.objects[key]
        else:
            obj["metadata"]["resourceVersion"] = str(rv)
            self.objects[key] = obj
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

    # ------------------------------------------------------------ watches

    async def watch(
        self, route: Route, params: dict[str, str], render: Render, client_gone: Callable[[], bool]
    ) -> AsyncIterator[Any]:
        """The watch stream: the current objects (from resourceVersion 0) or the changes since the
        given one (410 Expired when it is older than the history), then live changes, until
        `timeoutSeconds` or the client goes away. `render` shows each (type, object)."""
        assert self._changed is not None
        yield b""  # send the headers now, as the apiserver does, even if nothing happens for a while
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        since = params.get("resourceVersion") or "0"
        if since == "0":
            cursor = self.last_rv
            for obj in self.matching(route, params):
                yield render("ADDED", obj)
        else:
            cursor = int(since)
            oldest = self.history[0].rv if self.history else self.last_rv + 1
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
                shown = self._as_seen_by(route, params, event)
                if shown is not None:
                    yield render(*shown)
            async with self._changed:
                remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
                if remaining is not None and remaining <= 0:
                    return
                if self.last_rv <= cursor:
                    # Wake at least every second to notice a client that went away (a killed operator),
                    # so its stream does not linger until the server shuts down.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), min(remaining or 1.0, 1.0))
            if client_gone():
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

    @staticmethod
    def _as_seen_by(route: Route, params: dict[str, str], event: WatchEvent) -> tuple[str, dict[str, Any]] | None:
        """Selector transitions as the apiserver reports them: moving in is ADDED, moving out is DELETED."""
        if event.rtype_key != route.rtype.key:
            return None
        if route.namespace is not None and event.obj["metadata"].get("namespace") != route.namespace:
            return None

        def matches(obj: dict[str, Any] | None) -> bool:
            return obj is not None and selected(params, obj)

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
