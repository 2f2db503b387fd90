"""Search rules, pure: what a search request may ask (parsed and bounded), the document an
active product becomes in the index, price bands, opaque cursors and the NDCG@10 measure
the judged query set is scored with (docs/search.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from nexuscart import events

# --- limits on what a client controls ------------------------------------------------------

Q_MAX_CHARS: Final = 200
Q_MAX_TERMS: Final = 10
MAX_FILTERS: Final = 20  # brand + attribute values + category + price bounds + in_stock
FILTER_VALUE_MAX: Final = 100
ATTR_NAME_RE: Final = re.compile(r"^[a-z0-9_]{1,40}$")
LIMIT_DEFAULT: Final = 20
LIMIT_MAX: Final = 50
# Pages are offsets into the ranked list (the engine ranks the whole match set per query);
# deep paging is what a crawler does, so it stops at this depth like Elasticsearch's
# max_result_window.
MAX_OFFSET: Final = 1000
PRICE_MAX: Final = 10**12  # minor units; bigint-safe and far above any real price
QUERY_PARAMS_MAX: Final = 40  # distinct parameters in one query string

Sort = Literal["relevance", "price_asc", "price_desc", "newest"]
SORTS: Final[tuple[Sort, ...]] = ("relevance", "price_asc", "price_desc", "newest")

# Price bands of the facet, in minor units: [lo, hi) each; the last one is open.
PRICE_BANDS: Final[tuple[tuple[int, int | None], ...]] = (
    (0, 2_500),
    (2_500, 5_000),
    (5_000, 10_000),
    (10_000, 25_000),
    (25_000, 50_000),
    (50_000, 100_000),
    (100_000, None),
)


class Invalid(ValueError):
    """A search request the rules refuse; the message says which rule (-> 400)."""


class SearchDoc(msgspec.Struct, frozen=True):
    """An active product as the index holds it: one document per product, its variants folded
    in (cheapest price, any in stock, their attribute values)."""

    product_id: int
    title: str
    description: str
    brand: str
    category_id: int
    category_path: tuple[int, ...]  # the category and its ancestors, for subtree filters
    attributes: dict[str, list[str]]  # product and variant attributes, name -> values
    price_min: int  # minor units, the cheapest variant
    currency: str
    in_stock: bool
    created_at_ms: int
    version: int
    popularity: float = 0.0  # relative demand (the catalog's), a ranking signal


def rank_weight(popularity: float) -> float:
    """What a text match's score is multiplied by: 1 for the least popular products, up to
    POPULARITY_WEIGHT_MAX for the most popular (logarithmic: demand spans orders of
    magnitude, relevance must still come first)."""
    if popularity <= 0:
        return 1.0
    x = min(max(math.log10(popularity) + POPULARITY_DECADES, 0.0), POPULARITY_DECADES)
    return 1.0 + (POPULARITY_WEIGHT_MAX - 1.0) * x / POPULARITY_DECADES


POPULARITY_DECADES: Final = 6.0  # popularity 1e-6 and below weigh 1
POPULARITY_WEIGHT_MAX: Final = 4.0


class Variant(msgspec.Struct, frozen=True):
    sku: str
    price_minor: int
    currency: str
    attributes: dict[str, str]
    stock: int
    stock_version: int = 0


class ProductRow(msgspec.Struct, frozen=True):
    """A product as the catalog reader returns it for a rebuild."""

    product: events.ProductData
    variants: list[Variant]


class SearchQuery(msgspec.Struct, frozen=True):
    q: str = ""
    category_id: int | None = None
    price_min: int | None = None
    price_max: int | None = None
    brands: tuple[str, ...] = ()
    attrs: tuple[tuple[str, tuple[str, ...]], ...] = ()  # name -> any of these values
    in_stock: bool | None = None
    sort: Sort = "relevance"
    offset: int = 0
    limit: int = LIMIT_DEFAULT

    def fingerprint(self) -> str:
        """What a cursor is bound to: the query less its page."""
        key = msgspec.json.encode(
            [
                self.q,
                self.category_id,
                self.price_min,
                self.price_max,
                self.brands,
                self.attrs,
                self.in_stock,
                self.sort,
            ]
        )
        return hashlib.blake2b(key, digest_size=6).hexdigest()


# --- parsing --------------------------------------------------------------------------------

_WS: Final = re.compile(r"\s+")


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    if not raw or len(raw) > 19 or not raw.isascii() or not raw.isdigit():
        raise Invalid(f"{name} must be an integer in {lo}..{hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be an integer in {lo}..{hi}")
    return value


def _value(name: str, raw: str) -> str:
    v = raw.strip()
    if not v or len(v) > FILTER_VALUE_MAX or not v.isprintable():
        raise Invalid(f"{name} must be 1..{FILTER_VALUE_MAX} printable characters")
    return v


def parse(pairs: Sequence[tuple[str, str]]) -> SearchQuery:
    """The search request from its query parameters (repeated ``brand`` and ``attr.<name>``
    mean any of the values); Invalid for anything unknown, malformed or over a limit."""
    if len(pairs) > QUERY_PARAMS_MAX:
        raise Invalid(f"at most {QUERY_PARAMS_MAX} query parameters")
    q = ""
    category_id = price_min = price_max = None
    brands: list[str] = []
    attrs: dict[str, list[str]] = {}
    in_stock: bool | None = None
    sort: Sort = "relevance"
    cursor: str | None = None
    limit = LIMIT_DEFAULT
    seen: set[str] = set()
    for name, raw in pairs:
        if name in seen and name != "brand" and not name.startswith("attr."):
            raise Invalid(f"{name} given more than once")
        seen.add(name)
        if name == "q":
            if len(raw) > Q_MAX_CHARS:
                raise Invalid(f"q is longer than {Q_MAX_CHARS} characters")
            if not raw.isprintable():
                raise Invalid("q has control characters")
            q = _WS.sub(" ", raw).strip()
            if len(q.split(" ")) > Q_MAX_TERMS:
                raise Invalid(f"q has more than {Q_MAX_TERMS} words")
        elif name == "category":
            category_id = _int(name, raw, 0, (1 << 63) - 1)
        elif name == "price_min":
            price_min = _int(name, raw, 0, PRICE_MAX)
        elif name == "price_max":
            price_max = _int(name, raw, 0, PRICE_MAX)
        elif name == "brand":
            brands.append(_value(name, raw))
        elif name.startswith("attr."):
            attr = name[5:]
            if not ATTR_NAME_RE.match(attr):
                raise Invalid(f"{name}: attribute names are 1..40 of a-z, 0-9 and _")
            attrs.setdefault(attr, []).append(_value(name, raw))
        elif name == "in_stock":
            if raw not in ("true", "false"):
                raise Invalid("in_stock must be true or false")
            in_stock = raw == "true"
        elif name == "sort":
            if raw not in SORTS:
                raise Invalid(f"sort must be one of {', '.join(SORTS)}")
            sort = raw  # one of SORTS: checked just above
        elif name == "cursor":
            cursor = raw
        elif name == "limit":
            limit = _int(name, raw, 1, LIMIT_MAX)
        else:
            raise Invalid(f"unknown parameter {name!r}")
    if price_min is not None and price_max is not None and price_min > price_max:
        raise Invalid("price_min is above price_max")
    n_filters = (
        len(brands)
        + sum(len(v) for v in attrs.values())
        + (category_id is not None)
        + (price_min is not None)
        + (price_max is not None)
        + (in_stock is not None)
    )
    if n_filters > MAX_FILTERS:
        raise Invalid(f"at most {MAX_FILTERS} filter values")
    query = SearchQuery(
        q=q,
        category_id=category_id,
        price_min=price_min,
        price_max=price_max,
        brands=tuple(dict.fromkeys(brands)),
        attrs=tuple(sorted((k, tuple(dict.fromkeys(v))) for k, v in attrs.items())),
        in_stock=in_stock,
        sort=sort,
        limit=limit,
    )
    if cursor is not None:
        query = msgspec.structs.replace(query, offset=decode_cursor(cursor, query))
    return query


# --- cursors --------------------------------------------------------------------------------


def encode_cursor(query: SearchQuery, offset: int) -> str:
    raw = f"{offset}.{query.fingerprint()}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, query: SearchQuery) -> int:
    """The offset a cursor points at; Invalid when it is malformed, too deep, or was made for
    another query (a cursor only pages the search that returned it)."""
    if not cursor or len(cursor) > 64 or not cursor.isascii():
        raise Invalid("cursor is malformed")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise Invalid("cursor is malformed") from None
    offset_s, _, fp = raw.partition(".")
    if not offset_s.isdigit() or len(offset_s) > 6:
        raise Invalid("cursor is malformed")
    if fp != query.fingerprint():
        raise Invalid("cursor belongs to another query")
    offset = int(offset_s)
    if offset > MAX_OFFSET:
        raise Invalid(f"results beyond the first {MAX_OFFSET} are not served")
    return offset


def next_cursor(query: SearchQuery, total: int) -> str | None:
    nxt = query.offset + query.limit
    if nxt >= total or nxt > MAX_OFFSET:
        return None
    return encode_cursor(query, nxt)


# --- facets ---------------------------------------------------------------------------------


def price_band_label(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}" if hi is not None else f"{lo}-"


def attr_term(name: str, value: str) -> str:
    """The one string an attribute value is indexed as (facets count these)."""
    return f"{name}={value.lower()}"


# --- highlighting ---------------------------------------------------------------------------

_TOKEN: Final = re.compile(r"[^\W_]+")  # runs of letters and digits, as the index splits


def fold(word: str) -> str:
    """A word as the index holds it: lower case, accents dropped ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def highlight(title: str, words: Sequence[str], prefix: str | None = None) -> str:
    """``title`` HTML-escaped, each word that matched in ``<b>``: a word equal to one of
    ``words`` (as searched, after typo correction), or starting with ``prefix`` (the last
    query word, which also matches as a prefix)."""
    exact = set(words)
    out: list[str] = []
    at = 0
    for m in _TOKEN.finditer(title):
        token = fold(m.group())
        if token in exact or (prefix and len(prefix) >= 2 and token.startswith(prefix)):
            out.append(html.escape(title[at : m.start()]))
            out.append(f"<b>{html.escape(m.group())}</b>")
            at = m.end()
    out.append(html.escape(title[at:]))
    return "".join(out)


# --- relevance ------------------------------------------------------------------------------


def dcg(gains: Sequence[float]) -> float:
    return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at(k: int, ranked: Sequence[int], judged: Mapping[int, int]) -> float:
    """NDCG@k of ``ranked`` product ids against graded judgments (id -> grade, 0 = not
    relevant; ids not judged count 0)."""
    ideal = dcg(sorted(judged.values(), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([judged.get(pid, 0) for pid in ranked[:k]]) / ideal
