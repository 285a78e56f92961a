"""Neutral values and the message catalog."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bots.core import ReplyTarget, parse_command
from bots.core.messages import CATALOG, duration, t
from quota import next_reset, quota_day

pytestmark = pytest.mark.unit


def test_reply_target_round_trips_through_json() -> None:
    target = ReplyTarget("telegram", chat_id="-100123", message_id="42", thread_id="7")
    assert ReplyTarget.from_json(target.to_json()) == target
    assert '"platform":"telegram"' in target.to_json()


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
    for key, entry in CATALOG.items():
        assert set(entry) >= {"en", "ar"}, key
        assert re.search(r"[\u0600-\u06FF]", entry["ar"]), f"{key}: Arabic text expected"
        fields = {lang: set(re.findall(r"\{(\w+)\}", text)) for lang, text in entry.items()}
        assert fields["en"] == fields["ar"], key


def test_unknown_locale_falls_back_to_english() -> None:
    assert t("help", "fr") == t("help", "en")


def test_duration_is_short_and_localised() -> None:
    assert duration(3 * 3600 + 20 * 60) == "3 h 20 min"
    assert duration(10) == "1 min"
    assert duration(7200, "ar") == "2 س"


def test_quota_day_resets_at_local_midnight() -> None:
    riyadh = ZoneInfo("Asia/Riyadh")  # UTC+3
    late_utc = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)  # 00:30 on the 23rd in Riyadh
    assert quota_day(late_utc, riyadh).isoformat() == "2026-11-23"
    assert quota_day(late_utc, ZoneInfo("UTC")).isoformat() == "2026-11-22"
    assert next_reset(late_utc, riyadh) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
