"""An edge worker's garbage collector: startup objects frozen, a larger young generation.

With Python's defaults a full collection in an edge worker took 100-450 ms (wall, loaded
2-core machine) in a sold-out storm, and the storm's p99 was ~100 ms; with tune_gc, ~30 ms
(docs/adr/0017-edge-workers-freeze-startup-objects-and-collect-young-objects-less-often.md)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from nexuscart.web import GC_GEN0, App


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_a_worker_freezes_what_it_built_before_serving_and_collects_young_objects_less_often() -> (
    None
):
    gc.unfreeze()
    loop = asyncio.new_event_loop()
    try:
        App([], max_body_bytes=1024).__rsgi_init__(loop)
    finally:
        loop.close()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == GC_GEN0 > 700
