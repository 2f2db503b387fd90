"""The garbage collector of edge workers and services: startup objects frozen, a larger young
generation.

With Python's defaults a full collection in an edge worker took 100-450 ms (wall, loaded
2-core machine) in a sold-out storm, and the storm's p99 was ~100 ms; with tune_gc, ~30 ms
(docs/adr/0017-edge-workers-freeze-startup-objects-and-collect-young-objects-less-often.md)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexuscart.gc_tuning import GC_GEN0
from nexuscart.web import App


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


def test_a_service_runs_with_the_same_collector_settings(tmp_path: Path) -> None:
    # the payments consumer spent 9-13% less CPU per order with them (ADR 0017)
    pkg = tmp_path / "probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bootstrap.py").write_text(
        "import asyncio, gc\n"
        "async def main(stop: asyncio.Event) -> None:\n"
        "    print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
    )
    code = "from probe.bootstrap import main; from services import runtime; runtime.run(main)"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    env.pop("METRICS_PORT", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(GC_GEN0), "True"]
