"""Many open client connections never leave a new buyer unanswered."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tests.conftest import EdgeServer


def test_a_new_connection_is_answered_while_1500_idle_ones_are_open(edge: EdgeServer) -> None:
    # Regression: Granian's --backpressure (default backlog/workers: 512 per worker here)
    # caps the connections a worker accepts; past it, new connections the kernel had queued
    # on that worker's socket were never accepted and their requests hung (open-loop runs:
    # buyers unanswered for 10 s). The edge now runs with a cap far above that.
    url = urlsplit(edge.url)
    addr = (url.hostname or "127.0.0.1", url.port or 80)
    idle = []
    try:
        for _ in range(1500):  # ~750 per worker, spread by the kernel over both sockets
            idle.append(socket.create_connection(addr, timeout=5))
        for _ in range(20):  # each lands on either worker's socket
            with socket.create_connection(addr, timeout=5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for s in idle:
            s.close()
