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

Stdlib only and run as a script (`python gcs_strict.py --port P --backend URL`) in its own process, so a
multi-hundred-MB upload does not contend with the caller's interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field

CHUNK = 1 << 20
HEAD_LIMIT = 1 << 20
PEEK = 64 << 10
CONDITIONS = ("ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch", "ifMetagenerationNotMatch")
FAILED_MESSAGE = "At least one of the pre-conditions you specified did not hold."

UPLOAD = re.compile(r"^/upload/storage/v1/b/([^/]+)/o/?$")
COMPOSE = re.compile(r"^/storage/v1/b/([^/]+)/o/([^/]+)/compose$")
COPY = re.compile(r"^/storage/v1/b/[^/]+/o/[^/]+/(?:copyTo|rewriteTo)/b/([^/]+)/o/([^/]+)$")
FINAL_RANGE = re.compile(r"bytes (?:\d+-(\d+)|\*)/(\d+)")


@dataclass
class Head:
    """A request or response head: its first line and its headers, in order."""

    first: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def encode(self) -> bytes:
        lines = [self.first, *(f"{key}: {value}" for key, value in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.get("transfer-encoding") or "").lower()

    @property
    def length(self) -> int | None:
        value = self.get("content-length")
        return int(value) if value is not None else None


@dataclass(frozen=True)
class Target:
    """The object a write would create, and the preconditions it was given."""

    bucket: str
    name: str
    conditions: dict[str, int]


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None
        raise
    first, *lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    return Head(first, headers)


async def copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, size: int) -> None:
    while size > 0:
        data = await reader.read(min(CHUNK, size))
        if not data:
            raise ConnectionError("the peer closed the connection in the middle of a body")
        size -= len(data)
        if writer is not None:
            writer.write(data)
            await writer.drain()


async def relay_body(
    head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, *, skip: int = 0
) -> bool:
    """Relay (or, with no writer, discard) the body framed by `head`, less `skip` bytes already taken.
    False when the body ends with the connection (a response with neither a length nor chunked)."""
    if head.chunked:
        while True:
            line = await reader.readuntil(b"\r\n")
            if writer is not None:
                writer.write(line)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    if writer is not None:
                        writer.write(trailer)
                if writer is not None:
                    writer.write(b"\r\n")
                    await writer.drain()
                return True
            await copy_exact(reader, writer, size + 2)
    if head.length is not None:
        await copy_exact(reader, writer, head.length - skip)
        return True
    if not head.first.startswith("HTTP/"):
        return True  # a request without a length or chunks has no body
    while data := await reader.read(CHUNK):
        if writer is not None:
            writer.write(data)
            await writer.drain()
    return False


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


def multipart_name(head: Head, prefix: bytes) -> str | None:
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
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
        try:
            path = f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/{urllib.parse.quote(name, safe='')}"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            body = await reader.read()
        finally:
            writer.close()
        head, _, payload = body.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 404:
            return None
        if status != 200:
            raise ConnectionError(f"reading {bucket}/{name} from fake-gcs-server answered {status}")
        if b"chunked" in head.lower():
            raise ConnectionError("fake-gcs-server answered object metadata chunked")
        metadata = json.loads(payload)
        return int(metadata.get("generation", 0)), int(metadata.get("metageneration", 1))

    async def serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (head := await read_head(client_reader)) is not None:
                if backend is None:
                    backend = await asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
                keep = await self.exchange(head, client_reader, client_writer, backend)
                if keep is None:
                    backend[1].close()
                    backend = None
                elif not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if backend is not None:
                backend[1].close()
            client_writer.close()

    async def exchange(
        self,
        head: Head,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> bool | None:
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
        if target in self.sessions or target in self.refused:
            final = FINAL_RANGE.fullmatch(head.get("content-range") or "")
            if target in self.refused:
                await relay_body(head, client_reader, None)
                client_writer.write(refusal(412))
                await client_writer.drain()
                return True
            if method == "PUT" and final and (final.group(1) is None or int(final.group(1)) + 1 == int(final.group(2))):
                write = self.sessions[target]
        elif upload and method == "POST" and kind == "resumable" and conditions:
            length = head.length or 0
            prefix = await client_reader.readexactly(length) if length <= HEAD_LIMIT else b""
            name = (query.get("name") or [None])[0]
            if name is None and prefix:
                with contextlib.suppress(ValueError, AttributeError):
                    name = json.loads(prefix).get("name")
            if name:
                session = Target(urllib.parse.unquote(upload.group(1)), name, conditions)
        elif upload and method == "POST" and kind in ("media", "multipart") and conditions:
            name = (query.get("name") or [None])[0]
            if name is None and head.length is not None:
                prefix = await client_reader.readexactly(min(PEEK, head.length))
                name = multipart_name(head, prefix)
            if name:
                write = Target(urllib.parse.unquote(upload.group(1)), name, conditions)
        elif method == "POST" and conditions and (place := COMPOSE.match(url.path) or COPY.match(url.path)):
            write = Target(*(urllib.parse.unquote(part) for part in place.groups()), conditions)
        if write is None:
            return await self.forward(head, prefix, client_reader, client_writer, backend, session)
        async with self.locks[(write.bucket, write.name)]:
            status = violated(write.conditions, await self.live(write.bucket, write.name))
            if status is not None:
                if write is self.sessions.get(target):
                    del self.sessions[target]
                    self.refused.add(target)
                await relay_body(head, client_reader, None, skip=len(prefix))
                client_writer.write(refusal(status))
                await client_writer.drain()
                return True
            keep = await self.forward(head, prefix, client_reader, client_writer, backend, None)
            if write is self.sessions.get(target):
                del self.sessions[target]
            return keep

    async def forward(
        self,
        head: Head,
        prefix: bytes,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        session: Target | None,
    ) -> bool | None:
        backend_reader, backend_writer = backend
        backend_writer.write(head.encode() + prefix)
        await relay_body(head, client_reader, backend_writer, skip=len(prefix))
        while True:
            answer = await read_head(backend_reader)
            if answer is None:
                raise ConnectionError("fake-gcs-server closed the connection without answering")
            status = int(answer.first.split(" ", 2)[1])
            if status >= 200 or status == 101:
                break
            client_writer.write(answer.encode())
        if session is not None and 200 <= status < 300 and (location := answer.get("location")):
            parsed = urllib.parse.urlsplit(location)
            self.sessions[parsed.path + (f"?{parsed.query}" if parsed.query else "")] = session
        client_writer.write(answer.encode())
        if head.first.startswith("HEAD ") or status in (204, 304):
            await client_writer.drain()
            complete = True
        else:
            complete = await relay_body(answer, backend_reader, client_writer)
        if not complete:
            return False
        if (answer.get("connection") or "").lower() == "close":
            return None
        return True


async def main(port: int, backend: str) -> None:
    proxy = StrictProxy(backend)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", port, limit=HEAD_LIMIT)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="fake-gcs-server's URL")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.port, arguments.backend))
