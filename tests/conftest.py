"""Fixtures that start the real local stack (Redis, PostgreSQL, Kafka, stripe-mock) once per
session, and the edge under Granian as a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
import redis.asyncio as aioredis

from nexuscart import config, devstack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def stack() -> Iterator[devstack.Stack]:
    problems = devstack.check_prerequisites()
    if problems:
        pytest.exit("missing prerequisites (run scripts/bootstrap): " + "; ".join(problems), 2)
    s = devstack.start_stack()
    env = {**config.dev_defaults(), **s.env}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield s
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s.stop()


@pytest.fixture(scope="session")
def settings(stack: devstack.Stack) -> config.Settings:
    return config.load()


@pytest.fixture(scope="session")
def migrated(settings: config.Settings) -> None:
    import asyncio

    import asyncpg

    from nexuscart.adapters.postgres import migrate

    async def run() -> None:
        conn = await asyncpg.connect(settings.postgres.dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
async def redis_client(settings: config.Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis.url)
    yield client
    await client.aclose()


class EdgeServer:
    """The edge under Granian, as a separate process (what production runs)."""

    def __init__(self, env: dict[str, str], workers: int = 1):
        self.port = devstack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"nexuscart-edge-{self.port}.log"
        with self.log.open("wb") as logf:
            self.proc = self._spawn(env, workers, logf)
        self._wait_ready()

    def _spawn(self, env: dict[str, str], workers: int, logf: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "rsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--loop",
                "uvloop",
                "--no-ws",
                "edge.app:app",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            },
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edge exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"edge not ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# Tests send everything from 127.0.0.1: the per-IP bucket is opened wide, the per-user one
# kept small enough to test.
EDGE_TEST_ENV = {
    "GATE_IP_RATE": "1000000",
    "GATE_IP_BURST": "1000000",
    "GATE_USER_RATE": "5",
    "GATE_USER_BURST": "10",
    "SOLD_OUT_REFRESH_MS": "200",
}


@pytest.fixture(scope="session")
def edge(stack: devstack.Stack, migrated: None) -> Iterator[EdgeServer]:
    server = EdgeServer(EDGE_TEST_ENV, workers=2)
    yield server
    server.stop()
