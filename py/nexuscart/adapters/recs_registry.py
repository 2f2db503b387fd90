"""The model registry of the recommendations (docs/recommendations.md): versioned artifacts
as files, the active version as a Redis pointer.

Files (under ``RECS_MODEL_DIR``): ``<version>/arrays.npz`` (the model's arrays),
``<version>/ranker.ubj`` (the XGBoost booster), ``<version>/meta.json`` (offline metrics,
stage timings, configuration), written into a temporary directory and renamed, so a
version directory is whole or absent.

Keys (this module owns them):

- ``recs:model:active``: the active version; every process that serves polls it and loads
  a new version when it changes (no restart).
- ``recs:model:history``: the versions active before, newest first (50 kept); rollback
  pops one. Both keys change together in one Lua script (``recs_promote``,
  ``recs_rollback``).
- ``recs:model:meta``: hash version -> meta.json, so the admin list needs no file access.
- ``recs:train:lock``: held (``SET NX PX``, a random token) by the one replica of the
  service whose scheduled training runs; kept alive by its holder while it trains
  (``recs_train_refresh``), released only by it (``recs_train_unlock``), and expiring soon
  after the holder dies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script

ACTIVE_KEY: Final = b"recs:model:active"
HISTORY_KEY: Final = b"recs:model:history"
META_KEY: Final = b"recs:model:meta"
TRAIN_LOCK_KEY: Final = b"recs:train:lock"
VERSION_RE: Final = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")
_PROMOTE: Final = Script("recs_promote")
_ROLLBACK: Final = Script("recs_rollback")
_TRAIN_UNLOCK: Final = Script("recs_train_unlock")
_TRAIN_REFRESH: Final = Script("recs_train_refresh")


def _text(raw: object) -> str | None:
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    return text or None


class UnknownVersion(LookupError):
    pass


@dataclass(frozen=True)
class Artifact:
    version: str
    arrays: Mapping[str, npt.NDArray[Any]]
    ranker: bytes
    meta: dict[str, Any]


class ModelRegistry:
    def __init__(self, root: str | Path, redis: aioredis.Redis | None = None) -> None:
        """Without ``redis``: the files only (train without promoting)."""
        self.root = Path(root)
        self._redis = redis
        if redis is not None:
            self._promote = _PROMOTE.for_client(redis)
            self._rollback = _ROLLBACK.for_client(redis)
            self._train_unlock = _TRAIN_UNLOCK.for_client(redis)
            self._train_refresh = _TRAIN_REFRESH.for_client(redis)

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("this registry was opened without Redis")
        return self._redis

    # --- files -----------------------------------------------------------------------------

    def save(
        self, arrays: Mapping[str, npt.NDArray[Any]], ranker: bytes, meta: dict[str, Any]
    ) -> str:
        """Write a new version's files; returns its version (not yet registered)."""
        body = json.dumps(meta, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(ranker + body).hexdigest()[:8]
        version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + digest
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            np.savez(tmp / "arrays.npz", **arrays)  # type: ignore[arg-type]
            (tmp / "ranker.ubj").write_bytes(ranker)
            (tmp / "meta.json").write_text(
                json.dumps({**meta, "version": version}, sort_keys=True, default=str)
            )
            os.replace(tmp, self.root / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def load(self, version: str) -> Artifact:
        d = self._dir(version)
        with np.load(d / "arrays.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads((d / "meta.json").read_text())
        return Artifact(version, arrays, (d / "ranker.ubj").read_bytes(), meta)

    def _dir(self, version: str) -> Path:
        if not VERSION_RE.match(version) or not (self.root / version / "meta.json").exists():
            raise UnknownVersion(version)
        return self.root / version

    # --- the pointer -----------------------------------------------------------------------

    async def register(self, version: str) -> None:
        """Make a saved version known (listed, promotable)."""
        meta = (self._dir(version) / "meta.json").read_bytes()
        await self.redis.hset(META_KEY, version, meta)

    async def promote(self, version: str) -> str | None:
        """Make ``version`` active; returns the version it replaced."""
        self._dir(version)
        await self.register(version)
        _ = self.redis
        before = await self._promote(keys=[ACTIVE_KEY, HISTORY_KEY], args=[version])
        return _text(before)

    async def rollback(self) -> str | None:
        """Back to the previous active version; returns it (None: nothing to go back to)."""
        now = await self._rollback(keys=[ACTIVE_KEY, HISTORY_KEY])
        return _text(now)

    async def active(self) -> str | None:
        return _text(await self.redis.get(ACTIVE_KEY))

    async def versions(self) -> dict[str, dict[str, Any]]:
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(META_KEY))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def meta(self, version: str) -> dict[str, Any] | None:
        """A registered version's meta.json (None: not registered)."""
        raw = cast("bytes | None", await self.redis.hget(META_KEY, version))
        return cast("dict[str, Any]", json.loads(raw)) if raw else None

    # --- the training lock -----------------------------------------------------------------

    async def lock_training(self, token: str, ttl_ms: int) -> bool:
        """Take the training lock for ``ttl_ms``; False when another holder has it."""
        return bool(await self.redis.set(TRAIN_LOCK_KEY, token, nx=True, px=ttl_ms))

    async def refresh_training(self, token: str, ttl_ms: int) -> bool:
        """Keep the lock ``ttl_ms`` more if ``token`` still holds it (False: it does not)."""
        return bool(await self._train_refresh(keys=[TRAIN_LOCK_KEY], args=[token, ttl_ms]))

    async def unlock_training(self, token: str) -> bool:
        """Release the lock if ``token`` still holds it (False: it expired, or is another's)."""
        return bool(await self._train_unlock(keys=[TRAIN_LOCK_KEY], args=[token]))
