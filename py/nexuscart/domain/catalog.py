"""Catalog rules (docs/catalog.md): limits on what a seller may write, status transitions,
ownership, stock status and the ETag. Pure: no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Final, Literal

# Limits on everything a client controls (the wire types enforce the same bounds; these
# rules answer with every broken rule at once).
TITLE_MAX: Final = 200
DESCRIPTION_MAX: Final = 10_000
BRAND_MAX: Final = 100
ATTRIBUTES_MAX: Final = 30  # name -> value pairs per product or variant
ATTRIBUTE_NAME_MAX: Final = 40
ATTRIBUTE_VALUE_MAX: Final = 200
IMAGES_MAX: Final = 20
IMAGE_URL_MAX: Final = 2_048
VARIANTS_MAX: Final = 100  # per product
PRICE_MAX: Final = 10**12  # minor units: ten billion dollars
THRESHOLD_MAX: Final = 1_000_000
STOCK_MAX: Final = 10**9
DELTA_MAX: Final = 10**9  # per adjustment, either way
NOTE_MAX: Final = 500
LIST_LIMIT_MAX: Final = 100
INVENTORY_BATCH_MAX: Final = 50

SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ATTRIBUTE_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,39}$"
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"  # ISO 4217 alphabetic code, upper case
_SKU: Final = re.compile(SKU_PATTERN)
_ATTR: Final = re.compile(ATTRIBUTE_NAME_PATTERN)
_CURRENCY: Final = re.compile(CURRENCY_PATTERN)
_URL: Final = re.compile(r"^https?://[^\s/$.?#][^\s]*$")

Status = Literal["draft", "active", "archived"]
STATUSES: Final = ("draft", "active", "archived")
# archived is final: an archived product keeps its id, SKUs and history, and is sold no more
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "draft": frozenset({"draft", "active", "archived"}),
    "active": frozenset({"active", "draft", "archived"}),
    "archived": frozenset({"archived"}),
}
ADJUSTMENT_REASONS: Final = ("restock", "correction", "damage", "return", "count")
# Ids of products created through the API: derived from (seller, Idempotency-Key) into
# [2^40, 2^53): away from generated catalogs (1..), exact in JSON numbers everywhere.
CREATED_ID_MIN: Final = 1 << 40
CREATED_ID_SPAN: Final = (1 << 53) - (1 << 40)
_ID_NAMESPACE: Final = uuid.UUID("6f1c9a52-5b7e-4d38-9a43-2f6c0f8e1d17")


class RuleBroken(Exception):
    """The request breaks catalog rules; ``errors`` names each one (422)."""

    def __init__(self, errors: Sequence[str]):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


class TransitionRefused(Exception):
    """A status change the lifecycle does not allow (409)."""


def check_text(errors: list[str], name: str, value: str, max_len: int, required: bool) -> None:
    if required and not value.strip():
        errors.append(f"{name}: must not be empty")
    if len(value) > max_len:
        errors.append(f"{name}: at most {max_len} characters")
    if "\x00" in value:  # PostgreSQL text and jsonb cannot hold it
        errors.append(f"{name}: must not contain NUL characters")


def check_attributes(errors: list[str], name: str, attrs: Mapping[str, str]) -> None:
    if len(attrs) > ATTRIBUTES_MAX:
        errors.append(f"{name}: at most {ATTRIBUTES_MAX} attributes")
    for k, v in attrs.items():
        if not _ATTR.match(k):
            errors.append(f"{name}.{k[:40]}: names are lower-case letters, digits and _")
        if not v.strip() or len(v) > ATTRIBUTE_VALUE_MAX or "\x00" in v:
            errors.append(f"{name}.{k[:40]}: 1 to {ATTRIBUTE_VALUE_MAX} characters, no NUL")


def check_images(errors: list[str], images: Sequence[str]) -> None:
    if len(images) > IMAGES_MAX:
        errors.append(f"images: at most {IMAGES_MAX}")
    for i, url in enumerate(images):
        if len(url) > IMAGE_URL_MAX or not _URL.match(url) or "\x00" in url:
            errors.append(f"images[{i}]: an http(s) URL of at most {IMAGE_URL_MAX} characters")


def check_product(
    errors: list[str],
    *,
    title: str,
    description: str,
    brand: str,
    attributes: Mapping[str, str],
    images: Sequence[str],
    status: str,
) -> None:
    check_text(errors, "title", title, TITLE_MAX, required=True)
    check_text(errors, "description", description, DESCRIPTION_MAX, required=False)
    check_text(errors, "brand", brand, BRAND_MAX, required=False)
    check_attributes(errors, "attributes", attributes)
    check_images(errors, images)
    if status not in STATUSES:
        errors.append(f"status: one of {', '.join(STATUSES)}")


def check_variant(
    errors: list[str],
    *,
    sku: str,
    price_minor: int,
    currency: str,
    attributes: Mapping[str, str],
    low_stock_threshold: int,
    prefix: str = "",
) -> None:
    if not _SKU.match(sku):
        errors.append(f"{prefix}sku: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    if not 0 <= price_minor <= PRICE_MAX:
        errors.append(f"{prefix}price_minor: an integer in 0..{PRICE_MAX}")
    if not _CURRENCY.match(currency):
        errors.append(f"{prefix}currency: an ISO 4217 code, three upper-case letters")
    check_attributes(errors, f"{prefix}attributes", attributes)
    if not 0 <= low_stock_threshold <= THRESHOLD_MAX:
        errors.append(f"{prefix}low_stock_threshold: an integer in 0..{THRESHOLD_MAX}")


def check_transition(current: str, new: str) -> None:
    if new not in TRANSITIONS.get(current, frozenset()):
        raise TransitionRefused(f"a {current} product cannot become {new}")


def check_adjustment(errors: list[str], delta: int, reason: str, note: str) -> None:
    if delta == 0 or abs(delta) > DELTA_MAX:
        errors.append(f"delta: a non-zero integer in -{DELTA_MAX}..{DELTA_MAX}")
    if reason not in ADJUSTMENT_REASONS:
        errors.append(f"reason: one of {', '.join(ADJUSTMENT_REASONS)}")
    check_text(errors, "note", note, NOTE_MAX, required=False)


def raise_if(errors: Sequence[str]) -> None:
    if errors:
        raise RuleBroken(errors)


def may_write(user_id: int, is_admin: bool, seller_id: int) -> bool:
    """Sellers write their own products; admins write every product."""
    return is_admin or user_id == seller_id


def visible_to(status: str, user_id: int | None, is_admin: bool, seller_id: int) -> bool:
    """Active products are public; drafts and archived products only to their seller and
    admins (anyone else gets 404: whether such a product exists is not theirs to know)."""
    return status == "active" or (user_id is not None and may_write(user_id, is_admin, seller_id))


def created_product_id(seller_id: int, idempotency_key: str) -> int:
    """The id of a product created by ``seller_id`` under ``idempotency_key``: a retry of
    the create lands on the same row (single shard), whichever worker serves it."""
    h = uuid.uuid5(_ID_NAMESPACE, f"{seller_id}\x00{idempotency_key}").int
    return CREATED_ID_MIN + h % CREATED_ID_SPAN


def adjustment_id(sku: str, idempotency_key: str) -> uuid.UUID:
    """The id of a stock adjustment: a retried adjustment is recognised by its audit row."""
    return uuid.uuid5(_ID_NAMESPACE, f"stock\x00{sku}\x00{idempotency_key}")


StockStatus = Literal["in_stock", "low_stock", "out_of_stock"]


def stock_status(stock: int, threshold: int) -> StockStatus:
    if stock <= 0:
        return "out_of_stock"
    return "low_stock" if stock <= threshold else "in_stock"


def crossed_low(before: int, after: int, threshold: int) -> bool:
    """True when stock went from above the threshold to at or below it: StockLow fires once
    per crossing (it must rise above the threshold before the next one)."""
    return before > threshold >= after


def etag(version: int, stock_tag: str = "") -> str:
    """The product's ETag: its version, then (on pages) a tag of the stock shown. If-Match
    compares the version only: stock is not part of what a product write replaces."""
    return f'"{version}.{stock_tag}"' if stock_tag else f'"{version}"'


def if_match_version(header: str) -> int | None:
    """The version an If-Match names (``"7"``, ``"7.ab12"``, ``W/"7"``), None when it names
    none (``*`` is not accepted: a write must say which version it read)."""
    tag = header.strip()
    if "," in tag:  # several tags: the first one decides (clients send one)
        tag = tag.split(",", 1)[0].strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) < 3 or tag[0] != '"' or tag[-1] != '"':
        return None
    digits = tag[1:-1].split(".", 1)[0]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 9:
        return None
    return int(digits)


def subtree(children: Mapping[int, Sequence[int]], root: int) -> list[int]:
    """``root`` and every category under it."""
    out, todo = [], [root]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(children.get(c, ()))
    return out
