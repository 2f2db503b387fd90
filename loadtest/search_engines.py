"""Measures the two candidate search engines on the generator's catalog (ADR 0011):
PostgreSQL full-text search + pg_trgm, and tantivy embedded in the process. In-process,
sequential, bounded: each engine answers the same query mix (words with typos and
prefixes, filters, sorts, facet counts, highlights) ``--rounds`` times; the script prints
build time, mean/p50/p99 latency, QPS of one core, freshness of one change and NDCG@10 on
the judged query set.

    .venv/bin/python -m loadtest.search_engines --products 100000      # starts its own PG
    .venv/bin/python -m loadtest.search_engines --products 20000 --make-judged  # rewrite set

The judged set (tests/data/judged_queries.json) is made from the generator's own fields
and popularity, not from either engine (``make_judged`` says how); typo queries are judged
by the words they meant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from devtools import catalog_gen
from nexuscart import events
from nexuscart.app.search import Search
from nexuscart.domain import search as rules
from nexuscart.domain.search import SearchQuery

ROOT: Final = Path(__file__).resolve().parent.parent
JUDGED: Final = ROOT / "tests" / "data" / "judged_queries.json"
JUDGED_PRODUCTS: Final = 20_000  # the catalog the judged set is made on (seed 7)
MAX_RELEVANT: Final = 400  # a query with more full matches is too broad to judge usefully


# --- the catalog as catalog.v1 carries it ---------------------------------------------------


def product_data(p: catalog_gen.Product) -> events.ProductData:
    return events.ProductData(
        product_id=p.product_id,
        seller_id=p.seller_id,
        category_id=p.category_id,
        title=p.title,
        description=p.description,
        brand=p.brand,
        attributes=dict(p.attributes),
        images=list(p.images),
        status=p.status,
        version=1,
        popularity=p.popularity,
        variants=[
            events.VariantData(
                v.sku, v.price_minor, v.currency, dict(v.attributes), v.low_stock_threshold, v.stock
            )
            for v in p.variants
        ],
        created_at_ms=1_700_000_000_000 + p.product_id * 1000,
        updated_at_ms=1_700_000_000_000 + p.product_id * 1000,
    )


def catalog(n: int, seed: int = catalog_gen.DEFAULT_SEED) -> list[events.ProductData]:
    return [product_data(p) for p in catalog_gen.products(n, seed)]


def parents(seed: int = catalog_gen.DEFAULT_SEED) -> dict[int, int | None]:
    return {c.category_id: c.parent_id for c in catalog_gen.categories(seed)}


def tantivy_engine(products: Iterable[events.ProductData], tree: dict[int, int | None]) -> Search:
    s = Search()
    s.parents = dict(tree)
    docs = [
        d
        for p in products
        if (d := s.take_product(p, [(v.sku, v.stock, 0) for v in p.variants])) is not None
    ]
    s.index.apply(docs)
    s.ready = True
    return s


# --- the judged set -------------------------------------------------------------------------


class Judged(msgspec.Struct):
    q: str  # as typed (maybe with a typo)
    intended: str  # what the user meant
    grades: dict[str, int]  # product id -> 3 (title) or 2 (anywhere)
    params: list[tuple[str, str]] = []  # filters besides q


def load_judged(path: Path = JUDGED) -> list[Judged]:
    return msgspec.json.decode(path.read_bytes(), type=list[Judged])


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # one transposition


def make_judged(products: Sequence[events.ProductData], seed: int = 11) -> list[Judged]:
    """Queries that name product lines, brands and product kinds (a third of them with a
    typo), judged like a shopper would: grade 3 = the words as a phrase in the title of one
    of the 10 most popular such products (the ones a store should show first), 2 = the
    phrase in the title of a less popular one, 1 = every word somewhere in the product's
    text but not as a title phrase."""
    s = Search()
    analyze = s.index.analyzer.analyze
    active = [p for p in products if p.status == "active"]
    pop = {p.product_id: p.popularity for p in active}
    titles: dict[int, list[str]] = {}
    everything: dict[int, set[str]] = {}
    for p in active:
        titles[p.product_id] = [*analyze(f"{p.brand} {p.title}"), "|", *analyze(p.title)]
        extra = " ".join([p.title, p.brand, p.description, *p.attributes.values()])
        extra += " " + " ".join(v for var in p.variants for v in var.attributes.values())
        everything[p.product_id] = set(analyze(extra))

    def has_phrase(words: list[str], want: list[str]) -> bool:
        n = len(want)
        return any(words[i : i + n] == want for i in range(len(words) - n + 1))

    def grades(intended: str) -> dict[str, int]:
        want = analyze(intended)
        phrase = [pid for pid, t in titles.items() if has_phrase(t, want)]
        top = set(sorted(phrase, key=lambda pid: -pop[pid])[:10])
        out = {str(pid): 3 if pid in top else 2 for pid in phrase}
        for pid, words in everything.items():
            if str(pid) not in out and set(want) <= words:
                out[str(pid)] = 1
        return out

    rng = random.Random(seed)
    candidates: list[str] = []
    for (brand, _cat), lines in sorted(catalog_gen._LINES.items()):
        for line in lines:
            candidates.append(f"{brand} {line}".lower())
            candidates.append(line.lower())
    nouns = sorted({n for _, cats, _ in catalog_gen._DEPARTMENTS.values() for _, ns, _ in cats
                    for n in ns})  # fmt: skip
    brands = sorted({b for bs, _, _ in catalog_gen._DEPARTMENTS.values() for b in bs})
    for noun in nouns:
        candidates.append(noun.lower())
    for _ in range(200):
        candidates.append(f"{rng.choice(brands)} {rng.choice(nouns)}".lower())
    out: list[Judged] = []
    seen: set[str] = set()
    rng.shuffle(candidates)
    for intended in candidates:
        if intended in seen:
            continue
        seen.add(intended)
        g = grades(intended)
        if sum(1 for v in g.values() if v >= 2) < 3 or len(g) > MAX_RELEVANT:
            continue
        out.append(Judged(q=intended, intended=intended, grades=g))
        long_words = [w for w in intended.split() if len(w) >= 6 and w.isalpha()]
        if long_words and len(out) % 3 == 0:
            w = rng.choice(long_words)
            typo = _typo(w, rng)
            if typo != w:
                out.append(Judged(q=intended.replace(w, typo, 1), intended=intended, grades=g))
        if len(out) >= 80:
            break
    return out


def judged_query(j: Judged) -> SearchQuery:
    return rules.parse([("q", j.q), ("limit", "10"), *j.params])


def ndcg(engine_ids: Any, judged: Sequence[Judged]) -> float:
    """Mean NDCG@10 of ``engine_ids(judged) -> ranked product ids`` over the set."""
    scores = []
    for j in judged:
        ranked = engine_ids(j)
        scores.append(rules.ndcg_at(10, ranked, {int(k): v for k, v in j.grades.items()}))
    return statistics.fmean(scores)


def tantivy_ids(s: Search) -> Any:
    return lambda j: [h.product_id for h in s.search(judged_query(j)).items]


# --- the query mix --------------------------------------------------------------------------


def query_mix(
    judged: Sequence[Judged], tree: dict[int, int | None], n: int = 200
) -> list[SearchQuery]:
    """Words alone (a third with a typo), words + filters, browsing a category with a sort,
    each with facets; deterministic."""
    rng = random.Random(3)
    depts = [c for c, p in tree.items() if p is None]
    mids = [c for c, p in tree.items() if p in depts]
    out: list[SearchQuery] = []
    for i in range(n):
        j = judged[i % len(judged)]
        kind = i % 4
        params: list[tuple[str, str]] = [("q", j.q)]
        if kind == 1:
            params += [("in_stock", "true"), ("price_max", str(rng.choice([5000, 20000, 100000])))]
        elif kind == 2:
            params = [("category", str(rng.choice(mids))), ("sort", rng.choice(rules.SORTS[1:]))]
        elif kind == 3:
            params += [("sort", "price_asc")]
        out.append(rules.parse(params))
    return out


def latency(fn: Any, queries: Sequence[Any], rounds: int) -> dict[str, float]:
    times: list[float] = []
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - t)
    times.sort()
    return {
        "mean_ms": statistics.fmean(times) * 1e3,
        "p50_ms": times[len(times) // 2] * 1e3,
        "p99_ms": times[int(len(times) * 0.99)] * 1e3,
        "qps_one_core": 1 / statistics.fmean(times),
    }


# --- PostgreSQL full-text search + pg_trgm --------------------------------------------------

PG_SCHEMA: Final = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DROP TABLE IF EXISTS search_bench;
DROP TABLE IF EXISTS search_bench_words;
CREATE TABLE search_bench (
    product_id bigint PRIMARY KEY,
    title text NOT NULL,
    brand text NOT NULL,
    description text NOT NULL,
    category_id bigint NOT NULL,
    category_path bigint[] NOT NULL,
    attrs text[] NOT NULL,
    price_min bigint NOT NULL,
    in_stock boolean NOT NULL,
    created_at_ms bigint NOT NULL,
    weight double precision NOT NULL,  -- rank_weight(popularity), as tantivy's ranking
    doc tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', title), 'A')
        || setweight(to_tsvector('simple', brand), 'A')
        || setweight(to_tsvector('simple', description), 'C')) STORED
);
"""
PG_INDEXES: Final = """
CREATE INDEX ON search_bench USING gin (doc);
CREATE INDEX ON search_bench USING gin (category_path);
CREATE INDEX ON search_bench USING gin (attrs);
CREATE INDEX ON search_bench (price_min);
CREATE TABLE search_bench_words AS
    SELECT word, ndoc
    FROM ts_stat('SELECT to_tsvector(''simple'', title || '' '' || brand) FROM search_bench');
CREATE INDEX ON search_bench_words USING gin (word gin_trgm_ops);
CREATE UNIQUE INDEX ON search_bench_words (word);
ANALYZE search_bench; ANALYZE search_bench_words;
"""


class PgEngine:
    def __init__(self, conn: Any):
        self.conn = conn

    async def load(self, s: Search) -> None:
        await self.conn.execute(PG_SCHEMA)
        rows = [
            (d.product_id, d.title, d.brand, d.description, d.category_id, list(d.category_path),
             [rules.attr_term(k, v) for k, vs in d.attributes.items() for v in vs],
             d.price_min, d.in_stock, d.created_at_ms, rules.rank_weight(d.popularity))
            for d in s.docs.values()
        ]  # fmt: skip
        await self.conn.copy_records_to_table(
            "search_bench",
            records=rows,
            columns=["product_id", "title", "brand", "description", "category_id",
                     "category_path", "attrs", "price_min", "in_stock", "created_at_ms",
                     "weight"],
        )  # fmt: skip
        await self.conn.execute(PG_INDEXES)

    async def correct(self, word: str) -> str | None:
        hit = await self.conn.fetchval("SELECT 1 FROM search_bench_words WHERE word = $1", word)
        if hit or len(word) < 4:
            return word if hit else None
        return await self.conn.fetchval(  # type: ignore[no-any-return]
            "SELECT word FROM search_bench_words WHERE word % $1"
            " ORDER BY similarity(word, $1) DESC, ndoc DESC LIMIT 1",
            word,
        )

    async def search(self, q: SearchQuery, words: list[str]) -> list[int]:
        where = ["true"]
        args: list[Any] = []
        tsq = None
        if words:
            terms = []
            for i, w in enumerate(words):
                fixed = await self.correct(w)
                t = fixed or w
                terms.append(f"{t}:*" if i == len(words) - 1 else t)
            args.append(" & ".join(terms))
            tsq = f"to_tsquery('simple', ${len(args)})"
            where.append(f"doc @@ {tsq}")
        if q.category_id is not None:
            args.append([q.category_id])
            where.append(f"category_path @> ${len(args)}::bigint[]")
        if q.brands:
            args.append(list(q.brands))
            where.append(f"brand = ANY(${len(args)})")
        for name, values in q.attrs:
            args.append([rules.attr_term(name, v) for v in values])
            where.append(f"attrs && ${len(args)}::text[]")
        if q.price_min is not None:
            args.append(q.price_min)
            where.append(f"price_min >= ${len(args)}")
        if q.price_max is not None:
            args.append(q.price_max)
            where.append(f"price_min <= ${len(args)}")
        if q.in_stock is not None:
            args.append(q.in_stock)
            where.append(f"in_stock = ${len(args)}")
        cond = " AND ".join(where)
        order = {
            "price_asc": "price_min ASC",
            "price_desc": "price_min DESC",
            "newest": "created_at_ms DESC",
        }.get(q.sort, f"ts_rank(doc, {tsq}) * weight DESC" if tsq else "created_at_ms DESC")
        head = (
            f"ts_headline('simple', title, {tsq}, 'StartSel=<b>,StopSel=</b>')" if tsq else "title"
        )
        rows = await self.conn.fetch(
            f"SELECT product_id, {head} FROM search_bench WHERE {cond} ORDER BY {order}"
            f" LIMIT {q.limit} OFFSET {q.offset}",
            *args,
        )
        bands = ", ".join(
            f"count(*) FILTER (WHERE price_min >= {lo}{f' AND price_min < {hi}' if hi else ''})"
            for lo, hi in rules.PRICE_BANDS
        )
        await self.conn.fetch(
            f"""WITH m AS (SELECT brand, category_id, attrs, price_min FROM search_bench
                           WHERE {cond})
            (SELECT 'b', brand, count(*) FROM m GROUP BY brand ORDER BY 3 DESC LIMIT 20)
            UNION ALL
            (SELECT 'c', category_id::text, count(*) FROM m GROUP BY 2 ORDER BY 3 DESC LIMIT 20)
            UNION ALL
            (SELECT 'a', a, count(*) FROM m, unnest(attrs) a GROUP BY 2 ORDER BY 3 DESC LIMIT 40)
            UNION ALL
            (SELECT 'n', count(*)::text, 0 FROM m)
            UNION ALL
            (SELECT 'p', concat_ws(',', {bands}), 0 FROM m)""",
            *args,
        )
        return [r[0] for r in rows]


async def measure_pg(
    dsn: str, s: Search, queries: Sequence[SearchQuery], judged: Sequence[Judged], rounds: int
) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        pg = PgEngine(conn)
        t = time.perf_counter()
        await pg.load(s)
        build_s = time.perf_counter() - t
        words = {id(q): s.index.words(q.q) for q in queries}
        times: list[float] = []
        for _ in range(rounds):
            for q in queries:
                t = time.perf_counter()
                await pg.search(q, words[id(q)])
                times.append(time.perf_counter() - t)
        times.sort()
        result: dict[str, Any] = {"build_s": build_s}
        if times:
            result |= {
                "mean_ms": statistics.fmean(times) * 1e3,
                "p50_ms": times[len(times) // 2] * 1e3,
                "p99_ms": times[int(len(times) * 0.99)] * 1e3,
                "qps_one_connection": 1 / statistics.fmean(times),
            }
            print(f"postgres: {result}", file=sys.stderr)
        # freshness: one product's price changes; visible to the next query once committed
        t = time.perf_counter()
        await conn.execute("UPDATE search_bench SET price_min = price_min + 1 WHERE product_id = 1")
        result["freshness_ms"] = (time.perf_counter() - t) * 1e3
        scores = []
        for j in judged:
            q = judged_query(j)
            ids = await pg.search(q, s.index.words(q.q))
            scores.append(rules.ndcg_at(10, ids, {int(k): v for k, v in j.grades.items()}))
        result["ndcg10_judged"] = statistics.fmean(scores) if judged else None
        await conn.execute("DROP TABLE search_bench; DROP TABLE search_bench_words")
        return result
    finally:
        await conn.close()


def measure_tantivy(
    products: Sequence[events.ProductData],
    tree: dict[int, int | None],
    queries: Sequence[SearchQuery],
    rounds: int,
) -> tuple[Search, dict[str, Any]]:
    t = time.perf_counter()
    s = tantivy_engine(products, tree)
    build_s = time.perf_counter() - t
    result: dict[str, Any] = {"build_s": build_s, "docs": s.index.size}
    result.update(latency(s.search, queries, rounds))
    one = next(iter(s.docs.values()))
    t = time.perf_counter()
    s.index.apply([msgspec.structs.replace(one, price_min=one.price_min + 1)])
    result["freshness_ms"] = (time.perf_counter() - t) * 1e3
    # the edge's answer cache: a repeated query (the mix repeats) is a dict lookup
    keys = [str(i % 50) for i in range(len(queries))]
    for k, q in zip(keys, queries, strict=True):
        s.remember(k, s.search_json(q))
    result["cached_hit_us"] = latency(s.cached, keys, rounds)["mean_ms"] * 1e3
    return s, result


def _start_pg() -> tuple[str, Any]:
    from devtools import devstack
    from loadtest.storm import workdir

    work = workdir("nexuscart-search-bench-")
    server = devstack.postgres_server(work)
    server.start()
    return f"postgresql://postgres@127.0.0.1:{server.port}/postgres", server


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dsn", help="a PostgreSQL to use (default: start a throwaway one)")
    ap.add_argument("--no-pg", action="store_true", help="measure tantivy only")
    ap.add_argument("--make-judged", action="store_true", help=f"rewrite {JUDGED.name}")
    args = ap.parse_args(argv)
    tree = parents()
    t = time.perf_counter()
    products = catalog(args.products)
    print(f"generated {len(products)} products in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    if args.make_judged:
        judged = make_judged(catalog(JUDGED_PRODUCTS))
        JUDGED.write_bytes(msgspec.json.format(msgspec.json.encode(judged), indent=1) + b"\n")
        print(f"wrote {len(judged)} judged queries to {JUDGED}", file=sys.stderr)
    judged = load_judged()
    queries = query_mix(judged, tree)
    s, tv = measure_tantivy(products, tree, queries, args.rounds)
    print(f"tantivy: {tv}", file=sys.stderr)
    if args.products == JUDGED_PRODUCTS:
        tv["ndcg10_judged"] = ndcg(tantivy_ids(s), judged)
    else:  # the judged set is made on its own catalog size
        tv["ndcg10_judged"] = ndcg(
            tantivy_ids(tantivy_engine(catalog(JUDGED_PRODUCTS), tree)), judged
        )
    report: dict[str, Any] = {"products": args.products, "queries": len(queries),
                              "rounds": args.rounds, "tantivy": tv}  # fmt: skip
    if not args.no_pg:
        server = None
        dsn = args.dsn
        if dsn is None:
            dsn, server = _start_pg()
        try:
            pg = asyncio.run(measure_pg(dsn, s, queries, [], args.rounds))
            js = tantivy_engine(catalog(JUDGED_PRODUCTS), tree)
            pg["ndcg10_judged"] = asyncio.run(measure_pg(dsn, js, [], judged, 0))["ndcg10_judged"]
            report["postgres"] = pg
        finally:
            if server is not None:
                server.stop()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
