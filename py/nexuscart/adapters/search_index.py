"""The search index: tantivy, embedded, in memory, one per edge worker (ADR 0011).

Owns the schema, the analyzer, how a ``SearchDoc`` becomes a tantivy document and how a
``SearchQuery`` becomes a tantivy query with its facet aggregation. Writes are batched by
the caller (``apply``): one commit and one reader reload per batch, so a search sees a
whole batch or none of it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import Any, Final

import msgspec
import tantivy

from nexuscart.domain import search as rules
from nexuscart.domain.search import SearchDoc, SearchQuery

_ANALYZER: Final = "nc_text"
_TEXT_FIELDS: Final = ("title", "brand_text", "description")
# BM25 weights: a word in the title says more about the product than one in the description
_BOOST: Final = {"title": 3.0, "brand_text": 2.0, "description": 0.6}
_FUZZY_BOOST: Final = 0.5  # an exact word outranks a near miss
BRAND_FACET_SIZE: Final = 20
CATEGORY_FACET_SIZE: Final = 20
ATTR_FACET_SIZE: Final = 40
WRITER_HEAP: Final = 50_000_000  # tantivy's floor is 15 MB per thread
# process-wide, so a rebuilt index (a new object) never reuses a generation caches know
_generations: Final = itertools.count(1)


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("product_id", stored=True, indexed=True, fast=True)
    sb.add_text_field("title", stored=True, tokenizer_name=_ANALYZER)
    sb.add_text_field("brand_text", tokenizer_name=_ANALYZER)
    sb.add_text_field("description", tokenizer_name=_ANALYZER)
    # exact values, for filters and facet counts (fast: columnar, what aggregations read)
    sb.add_text_field("brand", stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("attr", fast=True, tokenizer_name="raw")
    sb.add_integer_field("category_path", indexed=True)
    sb.add_integer_field("category_id", stored=True, fast=True)
    sb.add_integer_field("price_min", stored=True, indexed=True, fast=True)
    sb.add_text_field("currency", stored=True, tokenizer_name="raw")
    sb.add_integer_field("in_stock", stored=True, indexed=True, fast=True)
    sb.add_integer_field("created_at_ms", fast=True)
    sb.add_float_field("weight", fast=True)  # rules.rank_weight of the product's popularity
    return sb.build()


def _analyzer() -> tantivy.TextAnalyzer:
    # words, lower-cased and folded to ASCII ("Café" finds "cafe"); no stemming: fuzzy terms
    # are built from the analysed query words and must meet the indexed words as they are
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


class Hit(msgspec.Struct, frozen=True):
    product_id: int
    title: str
    title_html: str  # the title, HTML-escaped, matched words in <b>
    brand: str
    category_id: int
    price_min: int
    currency: str
    in_stock: bool
    score: float


class Bucket(msgspec.Struct, frozen=True):
    value: str
    count: int


class Facets(msgspec.Struct, frozen=True):
    brand: list[Bucket]
    category: list[Bucket]
    price: list[Bucket]
    attributes: dict[str, list[Bucket]]


class Result(msgspec.Struct, frozen=True):
    total: int
    hits: list[Hit]
    facets: Facets


def fuzzy_distance(word: str) -> int:
    """Edits allowed for a query word: none for short words (too many neighbours), one from
    4 letters ("iphnoe" -> "iphone" is one transposition), two from 8."""
    return 0 if len(word) < 4 else 1 if len(word) < 8 else 2


class SearchIndex:
    """One in-memory tantivy index. ``apply`` is called from one task at a time (the
    follower); ``search`` from any number (tantivy searchers are immutable snapshots)."""

    def __init__(self) -> None:
        self.schema = _schema()
        self.index = tantivy.Index(self.schema)
        self.analyzer = _analyzer()
        self.index.register_tokenizer(_ANALYZER, self.analyzer)
        self._writer = self.index.writer(WRITER_HEAP, 1)
        self._lock = threading.Lock()
        self.searcher = self.index.searcher()
        self.generation = next(_generations)  # new per commit: result caches key on it
        self._aggs = self._facet_aggs()
        # known words (title, brand) -> documents that had them, for typo correction; a word
        # of a deleted document stays (a correction to it then finds nothing, as before)
        self._vocab: dict[str, int] = {}
        # unknown word -> its correction (or None), until the vocabulary changes
        self._corrections: dict[str, str | None] = {}

    # --- writes ---------------------------------------------------------------------------

    def _document(self, d: SearchDoc) -> tantivy.Document:
        doc = tantivy.Document()
        doc.add_integer("product_id", d.product_id)
        doc.add_text("title", d.title)
        doc.add_text("brand_text", d.brand)
        doc.add_text("description", d.description)
        doc.add_text("brand", d.brand)
        for name, values in d.attributes.items():
            for v in values:
                doc.add_text("attr", rules.attr_term(name, v))
        for c in d.category_path:
            doc.add_integer("category_path", c)
        doc.add_integer("category_id", d.category_id)
        doc.add_integer("price_min", d.price_min)
        doc.add_text("currency", d.currency)
        doc.add_integer("in_stock", int(d.in_stock))
        doc.add_integer("created_at_ms", d.created_at_ms)
        doc.add_float("weight", rules.rank_weight(d.popularity))
        return doc

    def apply(self, upserts: Iterable[SearchDoc], deletes: Iterable[int] = ()) -> None:
        """Replace or add ``upserts`` and drop ``deletes`` (product ids), in one commit."""
        with self._lock:
            w = self._writer
            for pid in deletes:
                w.delete_documents_by_term("product_id", pid)
            vocab, analyze = self._vocab, self.analyzer.analyze
            for d in upserts:
                w.delete_documents_by_term("product_id", d.product_id)
                w.add_document(self._document(d))
                for word in set(analyze(d.title)) | set(analyze(d.brand)):
                    vocab[word] = vocab.get(word, 0) + 1
            self._corrections = {}  # new words may be nearer neighbours
            w.commit()
            self.index.reload()
            self.searcher = self.index.searcher()
            self.generation = next(_generations)

    def clear(self) -> None:
        with self._lock:
            self._writer.delete_all_documents()
            self._writer.commit()
            self.index.reload()
            self.searcher = self.index.searcher()
            self.generation = next(_generations)

    @property
    def size(self) -> int:
        return int(self.searcher.num_docs)

    # --- reads ----------------------------------------------------------------------------

    def words(self, q: str) -> list[str]:
        return [t for t in self.analyzer.analyze(q) if t][: rules.Q_MAX_TERMS]

    def correct(self, word: str) -> str | None:
        """``word`` if the index knows it, else the most frequent known word one edit away
        (insert, delete, replace, transpose), else None: "iphnoe" -> "iphone". The corrected
        word is then searched exactly, so it is ranked by BM25 and highlighted."""
        vocab = self._vocab
        if word in vocab:
            return word
        if len(word) < 4:
            return None
        known = self._corrections.get(word, _UNSEEN)
        if known is not _UNSEEN:
            return known  # type: ignore[return-value]  # str | None, never the marker
        best, best_df = None, 0
        for cand in _edits1(word):
            df = vocab.get(cand, 0)
            if df > best_df:
                best, best_df = cand, df
        if len(self._corrections) >= CORRECTIONS_MAX:
            self._corrections.clear()
        self._corrections[word] = best
        return best

    def _text_query(self, words: list[str]) -> tantivy.Query:
        """Every word must match some text field: exactly (after correction), or, for a word
        with no known neighbour one edit away, within two edits (fuzzy); the last word also
        as a prefix (type-ahead: "head" finds "headphones")."""
        Q, Occur, s = tantivy.Query, tantivy.Occur, self.schema
        per_word: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for i, raw in enumerate(words):
            last = i == len(words) - 1
            w = self.correct(raw)
            alts: list[tuple[tantivy.Occur, tantivy.Query]] = []
            for f in _TEXT_FIELDS:
                boost = _BOOST[f]
                if w is not None:
                    alts.append((Occur.Should, Q.boost_query(Q.term_query(s, f, w), boost)))
                elif fuzzy_distance(raw) and f != "description":
                    fuzzy = Q.fuzzy_term_query(s, f, raw, fuzzy_distance(raw), True)
                    alts.append((Occur.Should, Q.boost_query(fuzzy, boost * _FUZZY_BOOST)))
                if last and len(raw) >= 2 and f == "title":
                    prefix = Q.fuzzy_term_query(s, f, raw, 0, True, True)
                    alts.append((Occur.Should, Q.boost_query(prefix, boost * _FUZZY_BOOST)))
            if not alts:
                return Q.empty_query()  # a short unknown word: nothing can match it
            per_word.append((Occur.Must, Q.boolean_query(alts)))
        return Q.boolean_query(per_word)

    def _filters(self, query: SearchQuery) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        Q, Occur, s = tantivy.Query, tantivy.Occur, self.schema
        out: list[tuple[tantivy.Occur, tantivy.Query]] = []
        if query.category_id is not None:
            out.append((Occur.Must, Q.term_query(s, "category_path", query.category_id)))
        if query.brands:
            out.append((Occur.Must, Q.term_set_query(s, "brand", list(query.brands))))
        for name, values in query.attrs:
            terms = [rules.attr_term(name, v) for v in values]
            out.append((Occur.Must, Q.term_set_query(s, "attr", terms)))
        if query.price_min is not None or query.price_max is not None:
            out.append(
                (
                    Occur.Must,
                    Q.range_query(
                        s,
                        "price_min",
                        tantivy.FieldType.Integer,
                        query.price_min if query.price_min is not None else 0,
                        query.price_max if query.price_max is not None else rules.PRICE_MAX,
                    ),
                )
            )
        if query.in_stock is not None:
            out.append((Occur.Must, Q.term_query(s, "in_stock", int(query.in_stock))))
        return out

    def _facet_aggs(self) -> dict[str, Any]:
        ranges: list[dict[str, float]] = []
        for lo, hi in rules.PRICE_BANDS:
            r: dict[str, float] = {"from": lo}
            if hi is not None:
                r["to"] = hi
            ranges.append(r)
        return {
            "brand": {"terms": {"field": "brand", "size": BRAND_FACET_SIZE}},
            "category": {"terms": {"field": "category_id", "size": CATEGORY_FACET_SIZE}},
            "attr": {"terms": {"field": "attr", "size": ATTR_FACET_SIZE}},
            "price": {"range": {"field": "price_min", "ranges": ranges}},
        }

    def build_query(self, query: SearchQuery) -> tuple[tantivy.Query, tantivy.Query | None]:
        """(the whole query, its text part or None) for a search request."""
        words = self.words(query.q)
        text = self._text_query(words) if words else None
        parts = self._filters(query)
        if text is not None:
            parts.insert(0, (tantivy.Occur.Must, text))
        if not parts:
            return tantivy.Query.all_query(), None
        return tantivy.Query.boolean_query(parts), text

    def search(self, query: SearchQuery, *, facets: bool = True) -> Result:
        searcher = self.searcher
        full, text = self.build_query(query)
        n = query.offset + query.limit
        if query.sort == "relevance" and text is not None:
            res = searcher.search(full, n, weight_by_field="weight")
        elif query.sort == "price_desc":
            res = searcher.search(full, n, order_by_field="price_min", order=tantivy.Order.Desc)
        elif query.sort == "price_asc":
            res = searcher.search(full, n, order_by_field="price_min", order=tantivy.Order.Asc)
        else:  # newest, and relevance without words (nothing to rank by but recency)
            res = searcher.search(full, n, order_by_field="created_at_ms")
        # what matched, for the highlights: the searched (corrected) words, and the last
        # word as typed, which also matched as a prefix
        typed = self.words(query.q)
        searched = [self.correct(w) or w for w in typed]
        prefix = typed[-1] if typed else None
        hits: list[Hit] = []
        for score, addr in res.hits[query.offset :]:
            doc = searcher.doc(addr)
            title = doc.get_first("title") or ""
            marked = rules.highlight(title, searched, prefix)
            hits.append(
                Hit(
                    product_id=int(doc.get_first("product_id") or 0),
                    title=title,
                    title_html=marked,
                    brand=doc.get_first("brand") or "",
                    category_id=int(doc.get_first("category_id") or 0),
                    price_min=int(doc.get_first("price_min") or 0),
                    currency=doc.get_first("currency") or "",
                    in_stock=bool(doc.get_first("in_stock")),
                    score=float(score) if isinstance(score, float) else 0.0,
                )
            )
        total = int(getattr(res, "count", 0) or 0)  # asked for (count=True): always set
        return Result(total, hits, self._facets(searcher, full) if facets else _NO_FACETS)

    def _facets(self, searcher: tantivy.Searcher, q: tantivy.Query) -> Facets:
        a = searcher.aggregate(q, self._aggs)

        def buckets(name: str) -> list[Bucket]:
            return [Bucket(str(b["key"]), int(b["doc_count"])) for b in a[name]["buckets"]]

        attrs: dict[str, list[Bucket]] = {}
        for b in a["attr"]["buckets"]:
            name, _, value = str(b["key"]).partition("=")
            attrs.setdefault(name, []).append(Bucket(value, int(b["doc_count"])))
        # tantivy adds a bucket for the gap below the first band ("*-0"): keyed by "from"
        by_from = {int(b.get("from", -1)): int(b["doc_count"]) for b in a["price"]["buckets"]}
        price = [
            Bucket(rules.price_band_label(lo, hi), by_from.get(lo, 0))
            for lo, hi in rules.PRICE_BANDS
        ]
        return Facets(buckets("brand"), buckets("category"), price, attrs)


_NO_FACETS: Final = Facets([], [], [], {})
_LETTERS: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_UNSEEN: Final = object()
CORRECTIONS_MAX: Final = 50_000


def _edits1(w: str) -> set[str]:
    splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
    return {
        *(a + b[1:] for a, b in splits if b),
        *(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1),
        *(a + c + b[1:] for a, b in splits if b for c in _LETTERS),
        *(a + c + b for a, b in splits for c in _LETTERS),
    }
