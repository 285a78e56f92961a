"""The status page's figures against SQL, its server over plain HTTP, and the busy reply's link,
on SQLite and PostgreSQL. (tests/e2e/test_status_page.py looks at it in a real browser.)"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from bots.console.adapter import ConsoleChat
from bots.core import Admin, AdminRequest, Core, Reply, Runtime, parse_command
from bots.core.messages import duration, t
from bots.core.status_figures import read_status
from bots.core.status_page import status_page
from tests.conftest import make_photo
from tests.statusutil import seed, serving, truth

pytestmark = pytest.mark.sql


def admin(core: Core, line: str) -> None:
    command = parse_command(line)
    assert command is not None
    reply, ok = Admin(core).run(AdminRequest("shell:status-test", "en", command))
    assert ok, reply.text


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_the_figures_are_what_sql_says(runtime: Runtime, core: Core) -> None:
    seed(runtime)
    sql, figures = truth(runtime), read_status(runtime)
    assert sql.queued == {"free": 3, "plus": 2, "pro": 1} and sql.done_last_hour == 6
    assert figures.done_last_hour == sql.done_last_hour
    assert {tier.name: tier.queued for tier in figures.tiers} == sql.queued
    assert [tier.wait_s for tier in figures.tiers] == pytest.approx(
        [sql.wait_s()] * 3, abs=0.01
    )  # SQLite: 1 ms
    assert (figures.mode, figures.free_open, figures.free_limit) == ("open", True, 3)
    admin(core, "/capacity paused-free")
    paused = read_status(runtime)
    assert truth(runtime).mode == paused.mode == "paused-free"
    assert not paused.free_open
    assert [tier.taking for tier in paused.tiers] == [False, True, True]
    admin(core, "/capacity open")
    admin(core, "/setlimit free 0")
    assert not read_status(runtime).free_open


def test_the_server_serves_both_languages_and_the_json(runtime: Runtime) -> None:
    seed(runtime)
    with serving(runtime, cache_s=0.0) as url:
        status, headers, en = get(url)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert '<html lang="en" dir="ltr"' in en
        status, _, ar = get(url + "ar")
        assert status == 200 and '<html lang="ar" dir="rtl"' in ar
        status, headers, body = get(url + "status.json?lang=ar")
        data: dict[str, Any] = json.loads(body)
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert data["done_last_hour"] == truth(runtime).done_last_hour
        assert data["fields"]["queued_free"] == "3"
        assert data["fields"]["wait_free"] == t(
            "status_wait_about", "ar", wait=duration(truth(runtime).wait_s(), "ar")
        )
        assert get(url + "status.json?lang=../../etc")[0] == 200  # unknown: English
        assert get(url + "forget")[0] == 404


def test_without_the_database_the_page_says_so_politely(runtime: Runtime, tmp_path: Path) -> None:
    engine = runtime.engine
    runtime.engine = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        with serving(runtime, cache_s=0.0) as url:
            status, _, body = get(url + "ar")
            assert status == 503 and html.escape(t("status_unavailable", "ar")) in body
            assert get(url + "status.json")[0] == 503
    finally:
        runtime.engine.dispose()
        runtime.engine = engine


# --- the busy reply -----------------------------------------------------------------------


def _busy(runtime: Runtime, core: Core, tmp_path: Path, locale: str) -> str:
    """The reply of a fourth free request while three wait and a 10 s wait is the most."""
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=10)

    def ask(i: int) -> Reply:
        photo = make_photo(tmp_path / f"p{i}.jpg", size=(120 + i, 90))
        reply = ConsoleChat(core, f"console:{locale}{i}", locale).handle_line(f"/ghibli {photo}")
        assert reply is not None
        return reply

    *queued, busy = [ask(i) for i in range(4)]
    assert all(reply.job_id for reply in queued) and busy.job_id is None
    return busy.text


def test_the_busy_reply_links_to_the_status_page(
    runtime: Runtime, core: Core, tmp_path: Path
) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"status_url": "https://status.example.com/"}
    )
    text = _busy(runtime, core, tmp_path, "en")
    busy = t("busy", "en", wait=duration(60, "en"))
    link = t("status_link", "en", url="https://status.example.com/")
    assert text == f"{busy} {link} {t('later_offer_console', 'en')}"  # then the relax offer


def test_the_arabic_busy_reply_links_to_the_arabic_page(
    runtime: Runtime, core: Core, tmp_path: Path
) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"status_url": "https://status.example.com/"}
    )
    text = _busy(runtime, core, tmp_path, "ar")
    link = t("status_link", "ar", url="https://status.example.com/ar")
    assert text.endswith(f"{link} {t('later_offer_console', 'ar')}")
    assert text.startswith(t("busy", "ar", wait=duration(60, "ar")))


def test_without_a_status_url_the_busy_reply_is_unchanged(
    runtime: Runtime, core: Core, tmp_path: Path
) -> None:
    busy = t("busy", "en", wait=duration(60, "en"))
    assert _busy(runtime, core, tmp_path, "en") == f"{busy} {t('later_offer_console', 'en')}"


# --- the page's life in a bot process ---------------------------------------------------------


def test_the_page_starts_and_stops_with_the_bot(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def life(port: int | None) -> tuple[bool, int | None]:
        runtime.settings = runtime.settings.model_copy(update={"status_port": port})
        async with status_page(runtime) as page:
            if page is None:
                return False, None
            status, _, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{page.port}/")
            return True, status

    assert asyncio.run(life(None)) == (False, None)  # STYLEBOT_STATUS_PORT unset: no page
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, "stylebot.status"):
            assert asyncio.run(life(port)) == (False, None)  # the bot runs on without one
        assert f"status_page_failed port={port}" in caplog.text
    assert asyncio.run(life(port)) == (True, 200)
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/")  # stopped with the bot
