"""Products for sale, read from a TOML file (STYLEBOT_PRODUCTS_FILE; quota/products.example.toml).

Two kinds: an image pack (extra images that never expire) and a tier pass (a tier for some
days). Each has a price per platform: Telegram Stars, and a Discord SKU id from the developer
portal. An operator's mistake is a ProductsError: one line naming the file, product and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from quota.tiers import TIER_NAMES

EXAMPLE = Path(__file__).with_name("products.example.toml")
KINDS = ("pack", "pass")
ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_ID = 40  # payments.product holds it; Telegram's invoice payload allows 128 bytes
KEYS = {"kind", "images", "tier", "days", "title", "description", "telegram_stars", "discord_sku"}


class ProductsError(ValueError):
    """An operator's mistake in the products file: one line naming the file, product and key."""


@dataclass(frozen=True)
class Product:
    id: str
    kind: str  # "pack" | "pass"
    images: int  # a pack's extra images; 0 for a pass
    tier: str | None  # a pass's tier; None for a pack
    days: int  # a pass's length; 0 for a pack
    title: dict[str, str]  # locale -> text, "en" required
    description: dict[str, str]
    telegram_stars: int | None  # None: not sold on Telegram
    discord_sku: str | None  # None: not sold on Discord

    def title_in(self, locale: str) -> str:
        return self.title.get(locale) or self.title["en"]

    def description_in(self, locale: str) -> str:
        return self.description.get(locale) or self.description["en"]


def load_products(path: Path) -> dict[str, Product]:
    """Products by id, in file order; ProductsError on any mistake."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ProductsError(f"products file {path}: cannot read it: {reason}") from None
    tables = raw.get("products")
    if not isinstance(tables, dict) or not tables:
        raise ProductsError(f"products file {path}: defines no [products.<id>] table")
    products = {pid: _product(path, pid, table) for pid, table in tables.items()}
    _unique_skus(path, products.values())
    return products


def _fail(path: Path, pid: str, key: str, problem: str) -> ProductsError:
    return ProductsError(f"products file {path}: product {pid!r}: {key}: {problem}")


def _product(path: Path, pid: str, table: Any) -> Product:
    if not pid or len(pid) > MAX_ID or set(pid) - ID_CHARS:
        raise _fail(path, pid, "id", f"use up to {MAX_ID} lowercase letters, digits, _ and -")
    if not isinstance(table, dict):
        raise _fail(path, pid, "table", f"expected a [products.{pid}] table")
    unknown = sorted(table.keys() - KEYS)
    if unknown:
        raise _fail(path, pid, unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
    kind = table.get("kind")
    if kind not in KINDS:
        raise _fail(path, pid, "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    pack = kind == "pack"
    tiers = [name for name in TIER_NAMES if name != "free"]
    tier = table.get("tier")
    if pack and tier is not None:
        raise _fail(path, pid, "tier", "a pack has no tier")
    if not pack and tier not in tiers:
        raise _fail(path, pid, "tier", f"{tier!r} is not one of {', '.join(tiers)}")
    return Product(
        id=pid,
        kind=kind,
        images=_count(path, pid, table, "images", required=pack),
        tier=tier,
        days=_count(path, pid, table, "days", required=not pack),
        title=_texts(path, pid, table, "title"),
        description=_texts(path, pid, table, "description"),
        telegram_stars=_price(path, pid, table),
        discord_sku=_sku(path, pid, table),
    )


def _count(path: Path, pid: str, table: dict[str, Any], key: str, *, required: bool) -> int:
    value = table.get(key)
    if not required:
        if value is not None:
            raise _fail(path, pid, key, f"not used by a {table['kind']}")
        return 0
    if not _whole(value) or not 1 <= value <= 100_000:
        raise _fail(path, pid, key, f"{value!r}: a whole number from 1 to 100000")
    return int(value)


def _price(path: Path, pid: str, table: dict[str, Any]) -> int | None:
    value = table.get("telegram_stars")
    if value is None:
        return None
    if not _whole(value) or not 1 <= value <= 100_000:
        raise _fail(path, pid, "telegram_stars", f"{value!r}: a whole number of stars, 1 or more")
    return int(value)


def _sku(path: Path, pid: str, table: dict[str, Any]) -> str | None:
    value = table.get("discord_sku", "")
    if not isinstance(value, str) or (value and not value.isdigit()):
        raise _fail(path, pid, "discord_sku", f'{value!r}: the SKU id (digits) or ""')
    return value or None


def _texts(path: Path, pid: str, table: dict[str, Any], key: str) -> dict[str, str]:
    value = table.get(key)
    if (
        not isinstance(value, dict)
        or not all(isinstance(v, str) and v.strip() for v in value.values())
        or not value.get("en")
    ):
        raise _fail(path, pid, key, "a table of texts by language, with 'en'")
    return dict(value)


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _unique_skus(path: Path, products: Any) -> None:
    seen: dict[str, str] = {}
    for product in products:
        sku = product.discord_sku
        if sku is not None and sku in seen:
            raise _fail(path, product.id, "discord_sku", f"{sku} is also {seen[sku]!r}'s SKU")
        if sku is not None:
            seen[sku] = product.id
