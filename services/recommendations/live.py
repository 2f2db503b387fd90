"""The training data of the live store: the signals the consumer appended to ``recs:log``
(the offline store's recent window) and the catalog from PostgreSQL, as the model's arrays.

Anonymous views (user 0) are left out: they say nothing about a shopper. Products no longer
in the catalog are left out too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, cast

import numpy as np
import redis.asyncio as aioredis

from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.recs_store import LOG_KEY
from services.recommendations import model as m

_KIND: Final = {b"view": 0, b"cart": 1, b"order": 2}
PAGE: Final = 50_000


@dataclass(frozen=True)
class LiveData:
    events: m.Events
    catalog: m.Catalog
    product_ids: m.I64
    user_ids: m.I64
    t_end: int  # seconds since the first event


async def read_log(redis: aioredis.Redis) -> tuple[m.I64, m.I64, m.I64, m.I64]:
    """(user id, product id, ms, kind) of every entry of recs:log, oldest first."""
    users: list[int] = []
    pids: list[int] = []
    ms: list[int] = []
    kinds: list[int] = []
    start = b"-"
    while True:
        page = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await redis.xrange(LOG_KEY, min=start, max=b"+", count=PAGE),
        )
        for entry_id, f in page:
            if entry_id == start:
                continue  # the page boundary, read already
            users.append(int(f[b"u"]))
            pids.append(int(f[b"p"]))
            ms.append(int(f[b"t"]))
            kinds.append(_KIND.get(f[b"k"], 0))
        if len(page) < PAGE:
            break
        start = page[-1][0]
    as_array = [np.array(x, dtype=np.int64) for x in (users, pids, ms, kinds)]
    return as_array[0], as_array[1], as_array[2], as_array[3]


async def catalog(repo: CatalogRepo) -> tuple[m.I64, m.Catalog]:
    """Product ids (ascending) and their leaf, department, log price and liveness."""
    tree = {c.category_id: c.parent_id for c in await repo.categories()}

    def root(c: int) -> int:
        hops = 0
        while tree.get(c) is not None and hops < 64:
            c, hops = cast(int, tree[c]), hops + 1
        return c

    rows: list[tuple[int, int, int, int, bool]] = []
    async for page in repo.iter_products():
        for p in page:
            price = min((v.price_minor for v in p.variants), default=1)
            rows.append((p.product_id, p.category_id, root(p.category_id), max(price, 1),
                         p.status == "active"))  # fmt: skip
    rows.sort()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    _, leaf = np.unique(np.array([r[1] for r in rows], dtype=np.int64), return_inverse=True)
    _, dept = np.unique(np.array([r[2] for r in rows], dtype=np.int64), return_inverse=True)
    cat = m.Catalog(
        leaf=leaf.astype(np.int64),
        dept=dept.astype(np.int64),
        log_price=np.log(np.array([r[3] for r in rows], dtype=np.float64)),
        active=np.array([r[4] for r in rows], dtype=np.bool_),
    )
    return ids, cat


async def load(redis: aioredis.Redis, repo: CatalogRepo) -> LiveData:
    users, pids, ms, kinds = await read_log(redis)
    product_ids, cat = await catalog(repo)
    if len(product_ids) == 0:
        raise LookupError("the catalog is empty")
    pos = np.minimum(np.searchsorted(product_ids, pids), len(product_ids) - 1)
    keep = (users > 0) & (product_ids[pos] == pids)
    users, items, ms, kinds = users[keep], pos[keep], ms[keep], kinds[keep]
    if len(users) == 0:
        raise LookupError("recs:log holds no signal of a known shopper and product")
    user_ids, user_idx = np.unique(users, return_inverse=True)
    t0 = int(ms.min())
    ts = (ms - t0) // 1000
    order = np.argsort(ts, kind="stable")
    ev = m.Events(
        user_idx.astype(np.int64)[order], items[order], ts[order], kinds.astype(np.int8)[order]
    )
    return LiveData(ev, cat, product_ids, user_ids.astype(np.int64), int(ts.max()) + 1)
