"""Neutral values and the message catalog."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bots.core import ReplyTarget, parse_command
from bots.core.messages import duration, keys, t, template
from quota import next_reset, quota_day

pytestmark = pytest.mark.unit


def test_reply_target_round_trips_through_json() -> None:
    target = ReplyTarget("telegram", chat_id="-100123", message_id="42", thread_id="7")
    assert ReplyTarget.from_json(target.to_json()) == target
    assert '"platform":"telegram"' in target.to_json()


def test_a_reply_target_with_a_short_lived_handle() -> None:
    target = ReplyTarget(
        "discord", chat_id="55", person="7", handle="tok", handle_expires=1000.0, reachable=False
    )
    assert ReplyTarget.from_json(target.to_json()) == target
    assert target.handle_alive(900.0) and not target.handle_alive(900.0, margin_s=100.0)
    assert not target.handle_alive(1000.0)
    assert not ReplyTarget("discord", chat_id="55").handle_alive(0.0)


def test_a_stored_target_from_before_the_handle_fields_still_loads() -> None:
    old = '{"chat_id":"-100123","message_id":"42","platform":"telegram","thread_id":null}'
    target = ReplyTarget.from_json(old)
    assert target.reachable and target.handle is None and not target.private


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("/ghibli photo.jpg", "ghibli", ("photo.jpg",)),
        ("/Ghibli@StyleBot", "ghibli", ()),
        ("  /quota  ", "quota", ()),
    ],
)
def test_parse_command(text: str, name: str, args: tuple[str, ...]) -> None:
    cmd = parse_command(text)
    assert cmd is not None and (cmd.name, cmd.args) == (name, args)


@pytest.mark.parametrize("text", ["hello", "", "/", "ghibli /x"])
def test_not_a_command(text: str) -> None:
    assert parse_command(text) is None


def test_every_message_has_english_and_arabic_with_the_same_placeholders() -> None:
    assert keys("en") and keys("en") == keys("ar")
    for key in keys("en"):
        en, ar = template(key, "en"), template(key, "ar")
        assert re.search(r"[\u0600-\u06FF]", ar), f"{key}: Arabic text expected"
        assert set(re.findall(r"\{(\w+)\}", en)) == set(re.findall(r"\{(\w+)\}", ar)), key


def test_unknown_locale_falls_back_to_english() -> None:
    assert t("help", "fr") == t("help", "en")


def test_duration_is_short_and_localised() -> None:
    assert duration(3 * 3600 + 20 * 60) == "3 hours and 20 minutes"
    assert duration(45 * 60) == "45 minutes"
    assert duration(10) == "1 minute"  # never less than a minute
    assert duration(90) == "2 minutes"
    assert duration(7200, "ar") == "ساعتان"  # the dual: two hours


def test_quota_day_resets_at_local_midnight() -> None:
    riyadh = ZoneInfo("Asia/Riyadh")  # UTC+3
    late_utc = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)  # 00:30 on the 23rd in Riyadh
    assert quota_day(late_utc, riyadh).isoformat() == "2026-11-23"
    assert quota_day(late_utc, ZoneInfo("UTC")).isoformat() == "2026-11-22"
    assert next_reset(late_utc, riyadh) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
