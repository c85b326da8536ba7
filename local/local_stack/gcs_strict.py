"""A loopback proxy in front of fake-gcs-server that enforces object preconditions on every upload kind.

fake-gcs-server checks `ifGenerationMatch` only on multipart uploads; real Cloud Storage checks the
preconditions of the JSON API (`ifGenerationMatch`, `ifGenerationNotMatch`, `ifMetagenerationMatch`,
`ifMetagenerationNotMatch`, query parameters) on every write: media, multipart and resumable uploads,
compose, copy and rewrite. Google's "Request preconditions" page
(https://cloud.google.com/storage/docs/request-preconditions) says a failed `ifGenerationMatch` or
`ifMetagenerationMatch` answers 412 Precondition Failed and a failed `...NotMatch` 304 Not Modified;
`ifGenerationMatch=0` means "only if no live object", and the `...NotMatch`/metageneration conditions
fail when there is no live object. For a resumable upload the preconditions are given on the initiating
POST, which opens the session whatever the object's state; they are evaluated when the upload is
finalized, and the object is created only if they still hold (observed against the service in
googleapis/google-cloud-java#201: the initiation succeeded, the data upload failed). The 412 body is the
JSON API's error form: {"error": {"code": 412, "message": ..., "errors": [{"domain": "global",
"reason": "conditionNotMet", "locationType": "header", "location": "If-Match", ...}]}}.

So this proxy: remembers the preconditions of each resumable session (by its session URL, taken from the
initiation's `Location`), and before forwarding a write that creates an object (a media or multipart
upload, the final chunk of a resumable session, compose, copy, rewrite) reads the object's generation from
fake-gcs-server and refuses the write if a precondition does not hold, holding a per-object lock from that
read until the write's answer so two racing writers cannot both pass. Bodies are relayed as they arrive,
never buffered whole (only a multipart upload's first 64 KiB, where its metadata names the object).

Stdlib only (imports nothing else of the local stack but `http_relay`) and run as its own process
(`python -m local_stack.gcs_strict --port P --backend URL`), so a multi-hundred-MB upload does not contend
with the caller's interpreter: measured in benchmarks/bench_gcs_proxy.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass

from .http_relay import HEAD_LIMIT, Conn, Head, read_head, relay_body

PEEK = 64 << 10
CONDITIONS = ("ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch", "ifMetagenerationNotMatch")
FAILED_MESSAGE = "At least one of the pre-conditions you specified did not hold."

UPLOAD = re.compile(r"^/upload/storage/v1/b/([^/]+)/o/?$")
COMPOSE = re.compile(r"^/storage/v1/b/([^/]+)/o/([^/]+)/compose$")
COPY = re.compile(r"^/storage/v1/b/[^/]+/o/[^/]+/(?:copyTo|rewriteTo)/b/([^/]+)/o/([^/]+)$")
FINAL_RANGE = re.compile(r"bytes (?:\d+-(\d+)|\*)/(\d+)")


@dataclass(frozen=True)
class Target:
    """The object a write would create, and the preconditions it was given."""

    bucket: str
    name: str
    conditions: dict[str, int]


def conditions_of(query: dict[str, list[str]]) -> dict[str, int]:
    return {name: int(query[name][0]) for name in CONDITIONS if name in query}


def violated(conditions: dict[str, int], live: tuple[int, int] | None) -> int | None:
    """The status a write given these preconditions answers over the live object's (generation,
    metageneration), None if there is none: 412 or 304 when one fails, None when all hold."""
    for name, wanted in conditions.items():
        if name == "ifGenerationMatch":
            holds = live is None if wanted == 0 else live is not None and live[0] == wanted
        elif live is None:
            return 412
        else:
            current = live[0] if "Generation" in name else live[1]
            if name.endswith("NotMatch"):
                if wanted != 0 and current == wanted:
                    return 304
                continue
            holds = current == wanted
        if not holds:
            return 412
    return None


def refusal(status: int) -> bytes:
    if status == 304:
        return b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n"
    error = {"domain": "global", "reason": "conditionNotMet", "message": FAILED_MESSAGE}
    error |= {"locationType": "header", "location": "If-Match"}
    body = json.dumps({"error": {"code": 412, "message": FAILED_MESSAGE, "errors": [error]}}).encode()
    head = Head("HTTP/1.1 412 Precondition Failed", [("Content-Type", "application/json; charset=UTF-8")])
    head.headers.append(("Content-Length", str(len(body))))
    return head.encode() + body


def multipart_name(prefix: bytes) -> str | None:
    """The object name in a multipart upload's first part (its JSON metadata)."""
    start = prefix.find(b"\r\n\r\n")
    if start < 0:
        return None
    end = prefix.find(b"\r\n--", start)
    try:
        metadata = json.loads(prefix[start + 4 : end if end > 0 else None])
    except ValueError:
        return None
    return metadata.get("name") if isinstance(metadata, dict) else None


class StrictProxy:
    def __init__(self, backend: str) -> None:
        parsed = urllib.parse.urlsplit(backend)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.sessions: dict[str, Target] = {}  # resumable session (path?query) -> what it writes
        self.refused: set[str] = set()  # sessions whose finalization failed a precondition
        self.locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def live(self, bucket: str, name: str) -> tuple[int, int] | None:
        """The object's (generation, metageneration) in fake-gcs-server; None when there is none."""
        conn = await Conn.connect(self.host, self.port)
        try:
            path = f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/{urllib.parse.quote(name, safe='')}"
            conn.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode())
            await conn.drain()
            while await conn.fill():
                pass
        finally:
            conn.close()
        head, _, payload = bytes(conn.buffer).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 404:
            return None
        if status != 200:
            raise ConnectionError(f"reading {bucket}/{name} from fake-gcs-server answered {status}")
        if b"chunked" in head.lower():
            raise ConnectionError("fake-gcs-server answered object metadata chunked")
        metadata = json.loads(payload)
        return int(metadata.get("generation", 0)), int(metadata.get("metageneration", 1))

    async def serve(self, client: Conn) -> None:
        backend: Conn | None = None
        try:
            while (head := await read_head(client)) is not None:
                if backend is None:
                    backend = await Conn.connect(self.host, self.port)
                keep = await self.exchange(head, client, backend)
                if keep is None:
                    backend.close()
                    backend = None
                elif not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if backend is not None:
                backend.close()
            client.close()

    async def exchange(self, head: Head, client: Conn, backend: Conn) -> bool | None:
        """One request and its answer. True: both connections go on; None: the backend's is spent; False:
        the client's is."""
        method, target, _ = head.first.split(" ", 2)
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        conditions = conditions_of(query)
        prefix = b""
        write: Target | None = None
        session = None
        upload = UPLOAD.match(url.path)
        kind = (query.get("uploadType") or [""])[0]
        if target in self.refused:
            return await self.refuse(412, head, client, prefix)
        if target in self.sessions:
            final = FINAL_RANGE.fullmatch(head.get("content-range") or "")
            if method == "PUT" and final and (final.group(1) is None or int(final.group(1)) + 1 == int(final.group(2))):
                write = self.sessions[target]
        elif upload and method == "POST" and kind == "resumable" and conditions:
            length = head.length or 0
            prefix = await client.readexactly(length) if length <= HEAD_LIMIT else b""
            name = (query.get("name") or [None])[0]
            if name is None and prefix:
                with contextlib.suppress(ValueError, AttributeError):
                    name = json.loads(prefix).get("name")
            if name:
                session = Target(urllib.parse.unquote(upload.group(1)), name, conditions)
        elif upload and method == "POST" and kind in ("media", "multipart") and conditions:
            name = (query.get("name") or [None])[0]
            if name is None and head.length is not None:
                prefix = await client.readexactly(min(PEEK, head.length))
                name = multipart_name(prefix)
            if name:
                write = Target(urllib.parse.unquote(upload.group(1)), name, conditions)
        elif method == "POST" and conditions and (place := COMPOSE.match(url.path) or COPY.match(url.path)):
            write = Target(*(urllib.parse.unquote(part) for part in place.groups()), conditions)
        if write is None:
            return await self.forward(head, prefix, client, backend, session)
        async with self.locks[(write.bucket, write.name)]:
            status = violated(write.conditions, await self.live(write.bucket, write.name))
            if self.sessions.get(target) is write:
                del self.sessions[target]
                if status is not None:
                    self.refused.add(target)
            if status is not None:
                return await self.refuse(status, head, client, prefix)
            return await self.forward(head, prefix, client, backend, None)

    @staticmethod
    async def refuse(status: int, head: Head, client: Conn, prefix: bytes) -> bool:
        """Answer `status` without forwarding; the request's body is read and dropped."""
        await relay_body(head, client, None, skip=len(prefix))
        client.write(refusal(status))
        await client.drain()
        return True

    async def forward(
        self, head: Head, prefix: bytes, client: Conn, backend: Conn, session: Target | None
    ) -> bool | None:
        backend.write(head.encode() + prefix)
        await relay_body(head, client, backend, skip=len(prefix))
        while True:
            answer = await read_head(backend)
            if answer is None:
                raise ConnectionError("fake-gcs-server closed the connection without answering")
            status = int(answer.first.split(" ", 2)[1])
            if status >= 200 or status == 101:
                break
            client.write(answer.encode())
        if session is not None and 200 <= status < 300 and (location := answer.get("location")):
            parsed = urllib.parse.urlsplit(location)
            self.sessions[parsed.path + (f"?{parsed.query}" if parsed.query else "")] = session
        client.write(answer.encode())
        if head.first.startswith("HEAD ") or status in (204, 304):
            await client.drain()
            complete = True
        else:
            complete = await relay_body(answer, backend, client)
        if not complete:
            return False
        if (answer.get("connection") or "").lower() == "close":
            return None
        return True


async def main(port: int, backend: str) -> None:
    proxy = StrictProxy(backend)
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    connections: set[asyncio.Task[None]] = set()
    while True:
        sock, _ = await loop.sock_accept(listener)
        task = asyncio.create_task(proxy.serve(Conn(sock)))
        connections.add(task)
        task.add_done_callback(connections.discard)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="fake-gcs-server's URL")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.port, arguments.backend))
