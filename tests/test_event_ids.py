"""Purchase event ids: valid UUIDs, unique within and across generators (no I/O)."""

from __future__ import annotations

import uuid

from nexuscart.events import EventIds


def test_event_ids_are_uuids_the_inbox_column_accepts() -> None:
    ids = EventIds()
    for _ in range(100):
        value = ids()
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert value.startswith(ids.prefix)
        assert parsed.version == 4


def test_two_workers_with_the_same_pid_do_not_collide() -> None:
    # Regression: the prefix was the pid, which two containers (or two hosts) can share;
    # with equal clocks and counters their ids, and so their orders' dedup keys, collided.
    a, b = EventIds(), EventIds()
    assert a.prefix != b.prefix
    seen = {a() for _ in range(10_000)} | {b() for _ in range(10_000)}
    assert len(seen) == 20_000
