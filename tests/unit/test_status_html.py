"""The status page's HTML and JSON, its figures cache and its settings: no SQL, no server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from bots.core import status_html
from bots.core.messages import duration, t
from bots.core.status_figures import StatusFigures, TierFigures
from bots.core.status_html import CSP, page_url, payload, render_page
from bots.core.status_page import FiguresCache
from storage.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 22, 9, 30, 5, tzinfo=UTC)


def figures(mode: str = "open", **free: Any) -> StatusFigures:
    free_tier = {"name": "free", "taking": True, "queued": 7, "wait_s": 95.0, "max_wait_s": 600}
    tiers = (
        TierFigures(**{**free_tier, **free}),
        TierFigures("plus", True, 1234, 2000.0, 1200),  # busy: 800 s over its maximum
        TierFigures("pro", True, 0, None, 1800),  # no live worker: no estimate
    )
    return StatusFigures(at=AT, mode=mode, free_limit=3, done_last_hour=42, tiers=tiers)


class Page(HTMLParser):
    """What a browser would see: the root's attributes, data-field texts, scripts and styles."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.fields: dict[str, str] = {}
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.tags: list[str] = []
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "html":
            self.root = dict(attrs)
        if tag not in ("meta",):
            self._open.append((tag, dict(attrs).get("data-field")))

    def handle_endtag(self, tag: str) -> None:
        self._open.pop()

    def handle_data(self, data: str) -> None:
        tag, field = self._open[-1] if self._open else ("", None)
        if field is not None:
            self.fields[field] = self.fields.get(field, "") + data
        if tag == "script":
            self.scripts.append(data)
        if tag == "style":
            self.styles.append(data)


def test_the_english_page_is_left_to_right_and_shows_every_figure() -> None:
    page = Page(render_page(figures(), "en", 15))
    assert page.root["lang"] == "en" and page.root["dir"] == "ltr"
    assert page.root["data-refresh"] == "15"
    assert page.fields == {
        "mode": t("status_mode_open", "en"),
        "free": "Open, 3 images a day",
        "done_last_hour": "42",
        "queued_free": "7",
        "queued_plus": "1,234",
        "queued_pro": "0",
        "wait_free": "About 2 minutes",
        "wait_plus": "Busy: please try again in about 13 minutes",
        "wait_pro": t("status_wait_no_workers", "en"),
        "updated": "Updated at 09:30:05 UTC. This page refreshes itself.",
    }


def test_the_arabic_page_is_right_to_left_in_arabic() -> None:
    page = Page(render_page(figures("paused-free", taking=False), "ar", 15))
    assert page.root["lang"] == "ar" and page.root["dir"] == "rtl"
    assert page.fields["mode"] == t("status_mode_paused_free", "ar")
    assert page.fields["free"] == t("status_free_paused", "ar")
    assert page.fields["wait_free"] == t("status_wait_not_taking", "ar")
    assert page.fields["wait_plus"] == t("status_wait_busy", "ar", wait=duration(800, "ar"))
    assert page.fields["done_last_hour"] == "42"


def test_the_json_carries_the_same_texts_and_the_raw_figures() -> None:
    page = Page(render_page(figures(), "ar", 15))
    data = payload(figures(), "ar")
    assert data["fields"] == page.fields
    assert data["done_last_hour"] == 42 and data["free_open"] is True and data["mode"] == "open"
    assert data["tiers"]["plus"] == {"taking": True, "queued": 1234, "wait_s": 2000.0}
    assert data["tiers"]["pro"]["wait_s"] is None


def test_each_page_links_to_the_other_language() -> None:
    assert 'href="./ar" hreflang="ar"' in render_page(figures(), "en", 15)
    assert 'href="./" hreflang="en"' in render_page(figures(), "ar", 15)


def test_everything_inserted_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = "<img src=x onerror=alert(1)>\"&'</span><script>alert(2)</script>"
    monkeypatch.setattr(status_html, "t", lambda *_a, **_k: hostile)
    monkeypatch.setattr(status_html, "format_value", lambda *_a, **_k: hostile)
    html = render_page(figures(), "en", 15)
    page = Page(html)
    assert "<img" not in html and "onerror=alert(1)>" not in html
    assert page.tags.count("script") == 1 and "alert" not in page.scripts[0]
    assert set(page.fields.values()) == {hostile}  # shown as text, exactly as given


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_the_policy_allows_exactly_the_inline_script_and_style() -> None:
    page = Page(render_page(figures(), "ar", 15))
    assert len(page.scripts) == 1 and len(page.styles) == 1
    script_src = re.search(r"script-src ([^;]+)", CSP)
    style_src = re.search(r"style-src ([^;]+)", CSP)
    assert script_src and script_src[1] == f"'{_csp_hash(page.scripts[0])}'"
    assert style_src and style_src[1] == f"'{_csp_hash(page.styles[0])}'"
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP


def test_a_page_without_script_reloads_itself() -> None:
    html = render_page(figures(), "en", 15)
    assert '<noscript><meta http-equiv="refresh" content="15"></noscript>' in html


@pytest.mark.parametrize(
    ("base", "locale", "expected"),
    [
        ("https://status.example.com/", "en", "https://status.example.com/"),
        ("https://status.example.com/", "ar", "https://status.example.com/ar"),
        ("https://example.com/status/", "ar-SA", "https://example.com/status/ar"),
        ("https://example.com/status", "fr", "https://example.com/status"),
    ],
)
def test_page_url(base: str, locale: str, expected: str) -> None:
    assert page_url(base, locale) == expected


# --- the figures cache ---------------------------------------------------------------------


def test_a_crowd_shares_one_read_until_the_figures_are_old() -> None:
    reads: list[float] = []
    now = [100.0]

    def read() -> StatusFigures:
        reads.append(now[0])
        return figures()

    async def crowds() -> None:
        cache = FiguresCache(read, max_age_s=2.0, clock=lambda: now[0])
        for at, expected in [(100.0, [100.0]), (101.9, [100.0]), (102.0, [100.0, 102.0])]:
            now[0] = at
            results = await asyncio.gather(*(cache.get() for _ in range(50)))
            assert all(r == figures() for r in results)
            assert reads == expected

    asyncio.run(crowds())


def test_a_failed_read_is_tried_again_next_time() -> None:
    calls = []

    def read() -> StatusFigures:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database down")
        return figures()

    async def twice() -> None:
        cache = FiguresCache(read, max_age_s=60.0)
        with pytest.raises(ConnectionError):
            await cache.get()
        assert await cache.get() == figures()

    asyncio.run(twice())


# --- settings ------------------------------------------------------------------------------


def test_status_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_STATUS_PORT", "")
    assert load_settings(_env_file=None).status_port is None
    monkeypatch.setenv("STYLEBOT_STATUS_PORT", "8080")
    monkeypatch.setenv("STYLEBOT_STATUS_URL", "https://status.example.com/")
    settings = load_settings(_env_file=None)
    assert (settings.status_port, settings.status_url) == (8080, "https://status.example.com/")
    monkeypatch.setenv("STYLEBOT_STATUS_PORT", "0")
    with pytest.raises(SettingsError, match="STYLEBOT_STATUS_PORT"):
        load_settings(_env_file=None)
    monkeypatch.setenv("STYLEBOT_STATUS_PORT", "8080")
    monkeypatch.setenv("STYLEBOT_STATUS_URL", "javascript:alert(1)")
    with pytest.raises(SettingsError, match="STYLEBOT_STATUS_URL"):
        load_settings(_env_file=None)
