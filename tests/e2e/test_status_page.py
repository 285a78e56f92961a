"""The public status page in a real headless browser (Playwright driving Debian's Chromium):
it renders, its figures are what SQL says, the Arabic page is right to left, and the live
refresh shows jobs finishing. On SQLite and PostgreSQL."""

from __future__ import annotations

import html
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bots.core import Admin, AdminRequest, Core, Runtime, parse_command
from bots.core.messages import duration, format_value, t
from tests.e2e.harness import running_emulator, telegram_process
from tests.statusutil import finish_queued, seed, serving, truth

pytestmark = pytest.mark.e2e

# Debian's package, never a browser downloaded by `playwright install`.
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("STYLEBOT_TEST_CHROMIUM", "/usr/bin/chromium"))
TIERS = ("free", "plus", "pro")

if TYPE_CHECKING:  # playwright is a dev dependency; without it these tests skip
    from playwright.sync_api import Browser, Locator, LocatorAssertions, Page


def _missing(reason: str) -> None:
    reason += " (Debian: apt-get install chromium; Playwright: pip install -e '.[dev]')"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed")
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}: the Debian package chromium is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def url(runtime: Runtime) -> Iterator[str]:
    """The real status server, refreshing every 0.5 s and reading SQL at most every 0.5 s."""
    seed(runtime)
    with serving(runtime, refresh_s=0.5, cache_s=0.5) as url:
        yield url


@pytest.fixture
def page(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh browser tab, closed before the server stops; it must log no error."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert not errors, f"the page logged errors (a CSP refusal, a script error): {errors}"


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's waiting assertions, imported where the browser fixture has checked it."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def field(page: Page, name: str) -> str:
    return page.locator(f'[data-field="{name}"]').inner_text()


def pause_free(core: Core) -> None:
    """/capacity paused-free, the way an admin's command goes everywhere."""
    command = parse_command("/capacity paused-free")
    assert command is not None
    reply, ok = Admin(core).run(AdminRequest("shell:status-e2e", "en", command))
    assert ok, reply.text


def assert_figures_match_sql(page: Page, rt: Runtime, loc: str) -> None:
    sql = truth(rt)
    for tier in TIERS:
        assert field(page, f"queued_{tier}") == format_value(sql.queued[tier], loc)
    assert field(page, "done_last_hour") == format_value(sql.done_last_hour, loc)
    about = t("status_wait_about", loc, wait=duration(sql.wait_s(), loc))
    assert field(page, "wait_plus") == about and field(page, "wait_pro") == about


def test_the_english_page_shows_what_sql_says(
    page: Page, url: str, runtime: Runtime, core: Core
) -> None:
    page.goto(url)
    assert page.title() == t("status_title", "en")
    assert page.locator("html").get_attribute("dir") == "ltr"
    assert_figures_match_sql(page, runtime, "en")
    assert field(page, "mode") == t("status_mode_open", "en")
    assert field(page, "free") == t("status_free_open", "en", limit=3)
    pause_free(core)
    assert truth(runtime).mode == "paused-free"
    expect(page.locator('[data-field="free"]')).to_have_text(t("status_free_paused", "en"))
    page.reload()
    assert field(page, "mode") == t("status_mode_paused_free", "en")
    assert field(page, "free") == t("status_free_paused", "en")
    assert field(page, "wait_free") == t("status_wait_not_taking", "en")
    assert_figures_match_sql(page, runtime, "en")


def test_the_arabic_page_is_right_to_left(
    page: Page, url: str, runtime: Runtime, core: Core
) -> None:
    pause_free(core)
    page.goto(url + "ar")
    html = page.locator("html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == ("ar", "rtl")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    cell = page.locator('[data-field="wait_plus"]')
    assert cell.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert page.title() == t("status_title", "ar")
    assert_figures_match_sql(page, runtime, "ar")
    assert field(page, "free") == t("status_free_paused", "ar")
    # In a right-to-left table the first column (the tier) is on the right.
    cells = [cell.bounding_box() for cell in page.locator("tbody tr >> nth=0 >> th, td").all()]
    assert len(cells) == 3 and all(cells)
    assert cells[0]["x"] > cells[1]["x"] > cells[2]["x"]  # type: ignore[index]
    page.get_by_role("link", name=t("language_name", "en")).click()
    page.wait_for_url(url)
    assert page.locator("html").get_attribute("dir") == "ltr"


def test_the_live_refresh_shows_jobs_finishing(page: Page, url: str, runtime: Runtime) -> None:
    page.goto(url + "ar")
    assert field(page, "done_last_hour") == format_value(6, "ar")
    page.evaluate("window.stillTheSamePage = true")
    finish_queued(runtime, "free", 2)
    sql = truth(runtime)
    assert sql.done_last_hour == 8 and sql.queued["free"] == 1
    expect(page.locator('[data-field="done_last_hour"]')).to_have_text(format_value(8, "ar"))
    expect(page.locator('[data-field="queued_free"]')).to_have_text("1")
    assert_figures_match_sql(page, runtime, "ar")
    # Updated in place by the script: the page itself was not loaded again.
    assert page.evaluate("window.stillTheSamePage === true")


def test_stylebot_telegram_serves_the_status_page_while_it_runs(tmp_path: Path) -> None:
    """The page lives and dies with the bot process (`stylebot telegram`, SIGTERM)."""
    port = free_port()
    with (
        running_emulator() as emu,
        telegram_process(tmp_path, emu, STYLEBOT_STATUS_PORT=str(port)) as bot,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ar", timeout=10) as r,
    ):
        page = r.read().decode()
        assert '<html lang="ar" dir="rtl"' in page
        assert html.escape(t("status_wait_no_workers", "ar")) in page  # no worker runs
    log = tmp_path / "bot.log"
    assert bot.returncode == 0, log.read_text()
    assert f"status_page_listening host=0.0.0.0 port={port}" in log.read_text()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
