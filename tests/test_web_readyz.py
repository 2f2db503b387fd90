"""/readyz answers from background probes: cheap under a flood, honest about stale answers;
the edge's PostgreSQL pool is created once however many first callers race."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from edge.deps import STALE_AFTER_S, Probes, build
from nexuscart import config, tasks
from nexuscart.adapters.kafka import MetadataProbe, metadata_ok
from nexuscart.adapters.payments_stripe import StripeProvider
from tests import rawhttp
from tests.conftest import EdgeServer


def _wait_ready(edge: EdgeServer) -> None:
    # a worker answers 503 until its first probes have answered
    for _ in range(100):
        if httpx.get(f"{edge.url}/readyz", timeout=10).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(httpx.get(f"{edge.url}/readyz", timeout=10).text)


async def test_200_concurrent_readyz_probes_all_answer_200(edge: EdgeServer) -> None:
    _wait_ready(edge)
    calls = [rawhttp.Call("GET", "/readyz", {}) for _ in range(200)]
    replies = await rawhttp.run(edge.url, calls, concurrency=200)
    assert [r.status for r in replies if r.status != 200] == []
    assert all(
        r.json()["checks"] == dict.fromkeys(("redis", "postgres", "kafka"), "ok") for r in replies
    )


async def test_an_answer_older_than_a_second_counts_as_down() -> None:
    async def ok() -> None:
        return None

    probes = Probes({"redis": ok, "kafka": ok}, timeout_s=1.0)
    assert probes.status() == {"redis": "down: not probed yet", "kafka": "down: not probed yet"}
    probes.answers = {"redis": (100.0, "ok"), "kafka": (100.0, "down: KafkaError")}
    assert probes.status(now=100.0 + STALE_AFTER_S) == {"redis": "ok", "kafka": "down: KafkaError"}
    stale = probes.status(now=100.0 + STALE_AFTER_S + 0.5)
    assert stale["redis"].startswith("down: no answer for")


async def test_a_hanging_probe_turns_down_and_a_fast_one_stays_ok() -> None:
    async def ok() -> None:
        return None

    async def hang() -> None:
        await asyncio.Event().wait()

    probes = Probes({"fast": ok, "slow": hang}, timeout_s=30.0)
    task = asyncio.ensure_future(probes.run())
    try:
        # the hanging one never answers: it is down from the start; the fast one turns ok
        for _ in range(200):
            if probes.status()["fast"] == "ok":
                break
            await asyncio.sleep(0.05)
        assert probes.status()["fast"] == "ok"
        assert probes.status()["slow"].startswith("down")
    finally:
        await tasks.stop(task)


async def test_the_kafka_probe_keeps_one_client(settings: config.Settings) -> None:
    probe = MetadataProbe(settings.kafka.bootstrap, 5.0)
    try:
        await probe.check()
        first = probe._admin
        await probe.check()
        assert first is not None
        assert probe._admin is first
    finally:
        await probe.close()
    down = MetadataProbe("127.0.0.1:1", 0.5)
    for _ in range(2):
        # refused or timed out: either way no client is kept
        with contextlib.suppress(Exception):
            await asyncio.wait_for(down.check(), 1.0)
        assert down._admin is None


async def test_the_kafka_probe_asks_for_no_topics_metadata(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every topic's metadata, twice a second per edge worker, took ~8% of a worker serving
    # product pages (py-spy); the probe needs a broker's answer, not the topics
    asked: list[list[str] | None] = []
    real = AIOKafkaAdminClient._get_cluster_metadata

    async def spy(self: AIOKafkaAdminClient, topics: list[str] | None = None) -> Any:
        asked.append(topics)
        return await real(self, topics)

    monkeypatch.setattr(AIOKafkaAdminClient, "_get_cluster_metadata", spy)
    probe = MetadataProbe(settings.kafka.bootstrap, 5.0)
    try:
        await probe.check()
    finally:
        await probe.close()
    assert await metadata_ok(settings.kafka.bootstrap)
    assert asked == [[], []]


async def test_concurrent_first_callers_share_one_postgres_pool(
    settings: config.Settings, migrated: None
) -> None:
    deps = build(settings)
    try:
        pools = await asyncio.gather(*(deps.pg_pool() for _ in range(20)))
        assert len({id(p) for p in pools}) == 1
        assert pools[0] is deps.pg
    finally:
        await deps.close()


async def test_closing_the_edge_closes_its_stripe_connections(
    settings: config.Settings, migrated: None
) -> None:
    deps = build(settings)
    assert deps.payments is not None
    provider = deps.payments.provider
    assert isinstance(provider, StripeProvider)
    provider.client  # noqa: B018  opens the keep-alive pool a refund would use
    assert provider._http is not None
    await deps.close()
    assert provider._http is None  # aiohttp warned "Unclosed client session" before
