"""``redis_slot`` / ``redis_slots`` against a real ``redis-server --cluster-enabled yes``.

A throwaway cluster-mode node is started for this module (no slots need to be assigned for
``CLUSTER KEYSLOT`` to answer), thousands of keys go to it in one pipelined round trip, and
every answer is compared with the Rust core.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools import devstack
from nexuscart._core import REDIS_SLOT_COUNT, redis_slot, redis_slots

SEED = 0xC1_0575
N_RANDOM = 6000

EDGE_KEYS: list[bytes] = [
    b"",
    b"a",
    b"foo",
    b"123456789",  # CRC16/XMODEM check value 0x31C3 -> slot 12739
    b"{",
    b"}",
    b"{}",
    b"}{",
    b"{}{}",
    b"{a}",
    b"{a}b",
    b"b{a}",
    b"a{}{b}",  # first tag is empty: the whole key is hashed
    b"a{b}{c}",  # only the first tag counts
    b"{{x}}",  # tag is "{x"
    b"{}x}",
    b"x{}",
    b"{user:1000}.following",
    b"{user:1000}.followers",
    b"foo{}{bar}",
    b"foo{{bar}}zap",
    b"foo{bar}{zap}",
    b"{\xff}",
    b"\x00",
    b"\x00{\x00}\x00",
    b"\xff\xfe\xfd",
    b"\x80abc{\xc3\x28}",  # invalid UTF-8 inside the tag
    "{🛒}cart".encode(),
    "käse{ß}".encode(),
    b"x" * 10_000,
    b"{" + b"y" * 10_000 + b"}",
]
EDGE_STR_KEYS = ["", "{}", "{a}b", "a{}{b}", "{{x}}", "é{ü}", "🛒", "{🛒}", "sale:{42}:stock"]


def _random_key(rng: random.Random) -> bytes:
    """Random bytes, with braces made frequent so every hash-tag rule is hit often."""
    length = rng.choice([rng.randint(0, 8), rng.randint(0, 64)])
    alphabet = rng.choice([b"{}ab", b"{}abcdefxyz01:", bytes(range(256))])
    out = bytearray(rng.choice(alphabet) for _ in range(length))
    if rng.random() < 0.3 and length:  # splice a well-formed tag in somewhere
        at = rng.randint(0, length)
        tag = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 5)))
        out[at:at] = b"{" + tag.replace(b"}", b"") + b"}"
    return bytes(out)


@pytest.fixture(scope="module")
def cluster_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server not found: run scripts/bootstrap")
    workdir: Path = tmp_path_factory.mktemp("redis-cluster")
    port = devstack.free_port()
    # the cluster bus defaults to port + 10000, impossible above 55535: give it its own port
    bus_port = devstack.free_port()
    while bus_port == port:
        bus_port = devstack.free_port()
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)

    def probe() -> bool:
        return bool(client.ping())

    server = devstack.Server(
        "redis-cluster",
        port,
        workdir,
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus_port),
            "--cluster-config-file",
            str(workdir / "nodes.conf"),
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ],
        probe,
        timeout=20,
    )
    server.start()
    try:
        yield client
    finally:
        client.close()
        server.stop()


def _keyslots(client: redis.Redis, keys: list[bytes]) -> list[int]:
    """CLUSTER KEYSLOT for every key, in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("CLUSTER", "KEYSLOT", key)  # type: ignore[no-untyped-call]
    return [int(s) for s in pipe.execute()]


def test_node_is_in_cluster_mode(cluster_node: redis.Redis) -> None:
    info = cluster_node.info("cluster")
    assert info["cluster_enabled"] == 1


def test_redis_slots_match_cluster_keyslot(cluster_node: redis.Redis) -> None:
    rng = random.Random(SEED)
    keys = EDGE_KEYS + [_random_key(rng) for _ in range(N_RANDOM)]
    expected = _keyslots(cluster_node, keys)
    assert all(0 <= s < REDIS_SLOT_COUNT for s in expected)
    ours = [redis_slot(k) for k in keys]
    wrong = [(k, a, b) for k, a, b in zip(keys, ours, expected, strict=True) if a != b]
    assert not wrong[:10]
    assert redis_slots(keys) == expected
    # the random keys did exercise the tag rules
    assert sum(1 for k in keys if b"{" in k and b"}" in k) > N_RANDOM // 4


def test_known_slots(cluster_node: redis.Redis) -> None:
    # The Redis Cluster specification's worked example: CRC16("123456789") = 0x31C3
    assert _keyslots(cluster_node, [b"123456789"]) == [0x31C3 % REDIS_SLOT_COUNT]
    assert redis_slot(b"123456789") == 12739
    # keys sharing a tag share a slot
    assert redis_slot(b"{user:1000}.following") == redis_slot(b"{user:1000}.followers")


def test_str_keys_are_utf8_encoded(cluster_node: redis.Redis) -> None:
    expected = _keyslots(cluster_node, [k.encode() for k in EDGE_STR_KEYS])
    assert [redis_slot(k) for k in EDGE_STR_KEYS] == expected
    mixed: list[bytes | str] = [k if i % 2 else k.encode() for i, k in enumerate(EDGE_STR_KEYS)]
    assert redis_slots(mixed) == expected
