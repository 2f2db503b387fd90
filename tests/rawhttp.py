"""A minimal keep-alive HTTP/1.1 client for concurrent tests.

httpx's async client stalls ~40 ms per request on loopback here (small writes meeting delayed
ACKs), which turns a 2,000-request storm into minutes; this sends each request in one write
with TCP_NODELAY over a fixed set of connections.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    @classmethod
    def post_json(cls, path: str, obj: Any, headers: dict[str, str]) -> Call:
        return cls(
            "POST", path, {**headers, "content-type": "application/json"}, json.dumps(obj).encode()
        )


async def _one_connection(
    host: str, port: int, calls: Sequence[Call], todo: list[int], out: list[Reply | None]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while todo:
            i = todo.pop()
            c = calls[i]
            head = [
                f"{c.method} {c.path} HTTP/1.1",
                f"host: {host}:{port}",
                f"content-length: {len(c.body)}",
            ]
            head += [f"{k}: {v}" for k, v in c.headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + c.body)
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            out[i] = Reply(int(status_line.split()[1]), headers, body)
    finally:
        writer.close()


async def run(base_url: str, calls: Sequence[Call], concurrency: int = 50) -> list[Reply]:
    u = urlsplit(base_url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    out: list[Reply | None] = [None] * len(calls)
    todo = list(range(len(calls)))[::-1]
    await asyncio.gather(
        *(
            _one_connection(host, port, calls, todo, out)
            for _ in range(min(concurrency, len(calls)))
        )
    )
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]
