"""The operator's own Kubernetes writes: status merge patches inside a turn, and aggregated Events.

kopf applies a handler's patch only when the handler returns; the submit protocol needs its marker
stored (and the store's answer seen) before the create, in the same turn, so status is written here,
with kopf's credentials (`kopf.ConnectionInfo`, from the login handler). Events are aggregated as the
kubelet's EventCorrelator does: one Event object per distinct problem of a resource, whose `count` and
`lastTimestamp` grow when it recurs, instead of one object per retry.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import kopf

from .. import api
from ..core.actions import Event

# Distinct (resource, problem) pairs remembered for aggregation; the oldest are forgotten first.
EVENT_KEYS = 20_000
# A recurring Event's count is written at most this often (seconds); the kubelet batches likewise.
MAX_MESSAGE = 1024


class StatusConflict(Exception):
    """The object changed since it was read (HTTP 409): the turn's decision is stale; decide again."""


class WriteFailed(Exception):
    """A status write the API server refused or did not answer."""


class StatusWriter(Protocol):
    """What a turn needs of Kubernetes: a merge patch of `.status`, returning the stored object."""

    async def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]: ...


@dataclass
class _Seen:
    name: str
    count: int
    written: int
    last_write: float


class Kube:
    """One aiohttp session to the API server, opened on first use from the login handler's credentials."""

    def __init__(self, event_update_interval: float = 30.0) -> None:
        self.event_update_interval = event_update_interval  # a recurring Event's count is written at most this often
        self.info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._events: OrderedDict[tuple[str, str, str, str], _Seen] = OrderedDict()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self.info is None:
                raise WriteFailed("no Kubernetes credentials yet (the login handler has not run)")
            info = self.info
            headers = {
                "Content-Type": "application/merge-patch+json",
                "Accept": "application/json",
                "User-Agent": "batch-inference-operator",
            }
            if info.token:
                headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
            auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
            ssl: Any = False if info.insecure else info.as_ssl_context()
            self._session = aiohttp.ClientSession(
                base_url=info.server.rstrip("/") + "/",
                headers=headers,
                auth=auth,
                connector=aiohttp.TCPConnector(ssl=ssl if info.server.startswith("https") else False),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, method: str, path: str, body: Any, content_type: str) -> dict[str, Any]:
        try:
            async with self.session().request(
                method, path.lstrip("/"), data=json.dumps(body), headers={"Content-Type": content_type}
            ) as response:
                text = await response.text()
                if response.status == 409:
                    raise StatusConflict(text[:300])
                if response.status >= 300:
                    raise WriteFailed(f"{method} {path}: {response.status} {text[:300]}")
                return json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError) as error:
            raise WriteFailed(f"{method} {path}: {error!r}") from error

    async def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        """A merge patch of `.status`; with `resource_version`, only if the object is still at it."""
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        path = f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}/{name}/status"
        return await self._send("PATCH", path, body, "application/merge-patch+json")

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a BatchInferenceJob (a shard's child); StatusConflict when the name is taken."""
        path = f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}"
        return await self._send("POST", path, body, "application/json")

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of a BatchInferenceJob (a parent's suspend or re-run reaching its children)."""
        path = f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}/{name}"
        return await self._send("PATCH", path, patch, "application/merge-patch+json")

    async def delete_job(self, namespace: str, name: str, uid: str) -> bool:
        """Delete this BatchInferenceJob only if it is still the object with this uid (one re-created under
        the same name is never deleted in its place). False: it is gone, or another object has its name."""
        path = f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}/{name}"
        try:
            await self._send("DELETE", path, {"preconditions": {"uid": uid}}, "application/json")
        except StatusConflict:
            return False
        except WriteFailed as error:
            if f"{path}: 404 " in str(error):
                return False
            raise
        return True

    async def post_events(self, involved: dict[str, Any], events: list[Event], now: float) -> None:
        """Post each Event, aggregated; a failure to post is logged by the caller, never fatal."""
        for event in events:
            await self._post(involved, event, now)

    async def _post(self, involved: dict[str, Any], event: Event, now: float) -> None:
        uid, namespace = involved.get("uid", ""), involved.get("namespace") or "default"
        key = (uid, event.type, event.reason, event.message)
        seen = self._events.get(key)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if seen is not None:
            self._events.move_to_end(key)
            seen.count += 1
            if now - seen.last_write < self.event_update_interval:
                return  # counted; written with the next recurrence after the interval
            seen.last_write, seen.written = now, seen.count
            patch = {"count": seen.count, "lastTimestamp": stamp}
            await self._send("PATCH", f"/api/v1/namespaces/{namespace}/events/{seen.name}", patch, _MERGE)
            return
        digest = hashlib.sha256("/".join(key).encode()).hexdigest()[:16]
        name = f"{involved.get('name', 'bij')[:200]}.{digest}"
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:MAX_MESSAGE],
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "batch-inference-operator", "host": HOST},
            "reportingComponent": "batch-inference-operator",
            "reportingInstance": HOST,
        }
        self._events[key] = _Seen(name, 1, 1, now)
        while len(self._events) > EVENT_KEYS:
            self._events.popitem(last=False)
        try:
            await self._send("POST", f"/api/v1/namespaces/{namespace}/events", body, "application/json")
        except StatusConflict:  # posted by an earlier process: count on from there
            await self._send("PATCH", f"/api/v1/namespaces/{namespace}/events/{name}", {"lastTimestamp": stamp}, _MERGE)

    def forget(self, uid: str) -> None:
        for key in [key for key in self._events if key[0] == uid]:
            del self._events[key]


_MERGE = "application/merge-patch+json"
HOST = socket.gethostname()  # the pod's name in a cluster: which replica posted an Event


def involved_object(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion") or f"{api.GROUP}/{api.VERSION}",
        "kind": body.get("kind") or api.KIND,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }
