"""The products file: the bundled example loads, and each operator mistake is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quota.products import EXAMPLE, ProductsError, load_products

pytestmark = pytest.mark.unit

PACK = """
[products.pack10]
kind = "pack"
images = 10
telegram_stars = 50
discord_sku = "111"
title = { en = "10 images", ar = "عشر صور" }
description = { en = "Ten more." }
"""
PASS = """
[products.plus30]
kind = "pass"
tier = "plus"
days = 30
telegram_stars = 250
discord_sku = ""
title = { en = "Plus" }
description = { en = "Plus for 30 days." }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "products.toml"
    path.write_text(text, "utf-8")
    return path


def test_the_bundled_example_has_two_packs_and_two_passes() -> None:
    products = load_products(EXAMPLE)
    packs = {p.id: p.images for p in products.values() if p.kind == "pack"}
    passes = {p.id: (p.tier, p.days) for p in products.values() if p.kind == "pass"}
    assert packs == {"pack10": 10, "pack50": 50}
    assert passes == {"plus30": ("plus", 30), "pro30": ("pro", 30)}
    for product in products.values():
        assert product.telegram_stars and product.telegram_stars > 0
        assert product.discord_sku is None  # "" placeholders: the operator fills them in
        assert set(product.title) == set(product.description) == {"en", "ar"}


def test_a_product_reads_as_written(tmp_path: Path) -> None:
    products = load_products(write(tmp_path, PACK + PASS))
    assert list(products) == ["pack10", "plus30"]
    pack, plus = products["pack10"], products["plus30"]
    assert (pack.kind, pack.images, pack.tier, pack.days) == ("pack", 10, None, 0)
    assert (pack.telegram_stars, pack.discord_sku) == (50, "111")
    assert (plus.kind, plus.images, plus.tier, plus.days, plus.discord_sku) == (
        "pass",
        0,
        "plus",
        30,
        None,
    )
    assert pack.title_in("ar") == "عشر صور" and pack.title_in("fr") == "10 images"
    assert pack.description_in("ar") == "Ten more."  # no Arabic text: the English one


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (PACK.replace('kind = "pack"', 'kind = "bundle"'), ("'pack10'", "kind", "bundle")),
        (PASS.replace('tier = "plus"', 'tier = "gold"'), ("'plus30'", "tier", "gold")),
        (PASS.replace('tier = "plus"', 'tier = "free"'), ("'plus30'", "tier", "free")),
        (PACK.replace("telegram_stars = 50", "telegram_stars = -5"), ("telegram_stars", "-5")),
        (PACK.replace("telegram_stars = 50", "telegram_stars = 0"), ("telegram_stars", "0")),
        (PACK.replace("telegram_stars = 50", 'telegram_stars = "50"'), ("telegram_stars",)),
        (PACK.replace("images = 10", "images = 0"), ("'pack10'", "images")),
        (PACK.replace("images = 10", "images = true"), ("'pack10'", "images")),
        (PASS.replace("days = 30", ""), ("'plus30'", "days")),
        (PACK + 'tier = "plus"\n', ("'pack10'", "tier", "a pack has no tier")),
        (PACK + "colour = 1\n", ("'pack10'", "colour", "unknown key")),
        (PACK.replace('discord_sku = "111"', 'discord_sku = "abc"'), ("discord_sku", "abc")),
        (PACK.replace("title = { en", "title = { fr"), ("'pack10'", "title", "'en'")),
        (PACK.replace("[products.pack10]", "[products.Pack10]"), ("'Pack10'", "id")),
        (PACK + PASS.replace('discord_sku = ""', 'discord_sku = "111"'), ("'plus30'", "111")),
        ("[products]\n", ("defines no [products.<id>] table",)),
        ("[products\n", ("cannot read it",)),
    ],
)
def test_each_mistake_is_one_line_naming_the_file_product_and_key(
    tmp_path: Path, text: str, names: tuple[str, ...]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProductsError) as caught:
        load_products(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for name in names:
        assert name in message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ProductsError, match=r"products file .*nowhere\.toml: cannot read it"):
        load_products(tmp_path / "nowhere.toml")


def test_the_bot_with_a_bad_products_file_prints_one_line(tmp_path: Path) -> None:
    bad = write(tmp_path, PACK.replace("telegram_stars = 50", "telegram_stars = -1"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    env.update(STYLEBOT_DATA_DIR=str(tmp_path / "data"), STYLEBOT_PRODUCTS_FILE=str(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "telegram"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("stylebot: STYLEBOT_PRODUCTS_FILE: products file ")
    assert "'pack10': telegram_stars: -1" in proc.stderr
