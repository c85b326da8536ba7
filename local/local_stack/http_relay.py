"""HTTP/1.1 relaying between two sockets for the strict Cloud Storage proxy (`gcs_strict`): heads parsed,
bodies framed (length, chunks, or the connection's end) and passed through one buffer per connection,
received into it and sent from it by the event loop, never held whole nor copied through streams."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

CHUNK = 1 << 20
HEAD_LIMIT = 1 << 20


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


class Conn:
    """A socket with a read buffer, read and written by the event loop directly: a body is relayed from
    one socket to another through one buffer (received into it, sent from it), no stream copies."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buffer = bytearray()
        self.pending: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        self.view = memoryview(bytearray(CHUNK))

    @classmethod
    async def connect(cls, host: str, port: int) -> Conn:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def fill(self) -> bool:
        data = await self.loop.sock_recv(self.sock, CHUNK)
        self.buffer += data
        return bool(data)

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def readuntil(self, separator: bytes) -> bytes:
        start = 0
        while (found := self.buffer.find(separator, start)) < 0:
            if len(self.buffer) > HEAD_LIMIT:
                raise ConnectionError("a head or chunk line over 1 MiB")
            start = max(0, len(self.buffer) - len(separator) + 1)
            if not await self.fill():
                raise asyncio.IncompleteReadError(bytes(self.buffer), None)
        return self.take(found + len(separator))

    async def readexactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self.fill():
                raise asyncio.IncompleteReadError(bytes(self.buffer), size)
        return self.take(size)

    async def read(self) -> bytes:
        """What is buffered, or the next bytes received; b"" at the end."""
        if not self.buffer:
            await self.fill()
        return self.take(len(self.buffer))

    def write(self, data: bytes) -> None:
        self.pending.append(data)

    async def drain(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            await self.loop.sock_sendall(self.sock, data)

    async def relay(self, to: Conn | None, size: int) -> None:
        """Exactly `size` bytes from this socket to `to` (after what `to` has pending), or dropped."""
        if self.buffer:
            data = self.take(min(size, len(self.buffer)))
            size -= len(data)
            if to is not None:
                to.write(data)
        if to is not None:
            await to.drain()
        while size > 0:
            received = await self.loop.sock_recv_into(self.sock, self.view[: min(size, CHUNK)])
            if not received:
                raise ConnectionError("the peer closed the connection in the middle of a body")
            size -= received
            if to is not None:
                await self.loop.sock_sendall(to.sock, self.view[:received])

    def close(self) -> None:
        self.sock.close()


async def read_head(conn: Conn) -> Head | None:
    try:
        raw = await conn.readuntil(b"\r\n\r\n")
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


async def relay_body(head: Head, source: Conn, to: Conn | None, *, skip: int = 0) -> bool:
    """Relay (or, with no `to`, drop) the body framed by `head`, less `skip` bytes already taken, and send
    all `to` has pending. False when the body ends with the connection (a response with neither a length
    nor chunks)."""
    if head.chunked:
        while True:
            line = await source.readuntil(b"\r\n")
            if to is not None:
                to.write(line)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await source.readuntil(b"\r\n")) != b"\r\n":
                    if to is not None:
                        to.write(trailer)
                if to is not None:
                    to.write(b"\r\n")
                    await to.drain()
                return True
            await source.relay(to, size + 2)
    if head.length is not None:
        await source.relay(to, head.length - skip)
        return True
    if not head.first.startswith("HTTP/"):
        if to is not None:
            await to.drain()
        return True  # a request without a length or chunks has no body
    while data := await source.read():
        if to is not None:
            to.write(data)
            await to.drain()
    return False
