"""The pure parts of `stylebot bench load`: the people's plan, and how replies are counted
(first replies, kinds, lost and duplicated answers, message rates). No emulator, no bot."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from bench.load_count import answers, deleted, kind_of, messages, peak, rates, replies
from bench.load_people import junk, photo_jpeg, plan
from bots.core.messages import t

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class FakeCall:
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    sent_id: int | None = None


@dataclass(frozen=True)
class FakeRequest:
    chat_id: int
    message_id: int
    at: float


def reply(
    at: float, chat: int, to: int, text: str, method: str = "sendMessage", sent: int = 0
) -> Any:
    key = "text" if method == "sendMessage" else "caption"
    params = {"chat_id": chat, "reply_parameters": {"message_id": to}, key: text}
    return (at, FakeCall(method, params, sent_id=sent))


def test_the_plan_is_the_same_for_a_seed_and_keeps_within_the_run() -> None:
    folks, sends = plan(300, 20.0, seed=3)
    assert (folks, sends) == plan(300, 20.0, seed=3)
    assert {p.tier for p in folks} == {"free", "plus", "pro"}
    assert all(0 <= s.at_s < 20.0 for s in sends)
    assert [s.at_s for s in sends] == sorted(s.at_s for s in sends)
    kinds = {s.kind for s in sends}
    assert {"photo", "same", "again", "pdf", "empty", "corrupt"} <= kinds


def test_repeats_point_at_the_same_persons_earlier_sends() -> None:
    _, sends = plan(300, 20.0, seed=3)
    for i, send in enumerate(sends):
        if send.kind == "again":
            assert send.previous is not None and send.previous < i
            original = sends[send.previous]
            assert original.user_id == send.user_id and original.is_request
        if send.kind == "same":
            earlier = [s.seed for s in sends[:i] if s.user_id == send.user_id]
            assert send.seed in earlier


def test_photos_differ_by_seed_and_junk_is_not_an_image() -> None:
    assert photo_jpeg(1) != photo_jpeg(2)
    assert Image.open(io.BytesIO(photo_jpeg(1))).size == (256, 192)
    assert junk("empty")[0] == b""
    assert junk("pdf")[1] == "application/pdf"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(junk("corrupt")[0])).load()


def test_replies_are_told_apart_by_the_catalog_sentence_they_start_with() -> None:
    assert kind_of(t("queued_eta", style="Ghibli", position=3, eta="1 minute")) == "queued"
    assert kind_of(t("busy", wait="2 minutes")) == "busy"
    assert kind_of(t("quota_daily", limit=3, reset="5 hours")) == "quota: daily limit"
    assert kind_of(t("quota_in_flight")) == "quota: one at a time"
    assert kind_of(t("image_corrupt")) == "refused: not a usable image"
    assert kind_of(t("duplicate_result")) == "earlier result sent again"
    assert kind_of("something else entirely") == "other"


def test_lost_and_duplicated_answers_are_counted_per_request() -> None:
    queued = t("queued", style="Ghibli", position=1)
    result = t("result", style="Ghibli", left=2)
    calls = [
        reply(1.2, 1, 10, queued, sent=11), reply(3.0, 1, 10, result, "sendPhoto"),  # fine
        (3.1, FakeCall("deleteMessage", {"chat_id": 1, "message_id": 11})),
        reply(1.2, 7, 70, queued, sent=71), reply(3.0, 7, 70, result, "sendPhoto"),  # left
        reply(1.5, 3, 30, result, "sendPhoto"), reply(1.6, 3, 30, result, "sendPhoto"),  # twice
        reply(1.1, 4, 40, queued),  # admitted, its result never came
        reply(1.3, 5, 50, t("busy", wait="1 minute")), reply(1.4, 5, 50, t("busy", wait="1")),
        reply(1.3, 6, 60, queued), (1.31, FakeCall("sendMessage", {"chat_id": 6}, 429)),
    ]  # fmt: skip
    requests = [FakeRequest(chat, chat * 10, 1.0) for chat in (1, 2, 3, 4, 5, 7)]
    jobs = {(1, 10), (3, 30), (4, 40), (7, 70)}
    found = answers(requests, replies(calls), jobs, deleted(calls))
    assert (found.no_reply, found.no_result, found.duplicated) == (1, 1, 2)
    assert (found.results, found.statuses_left) == (4, 1)
    assert found.first_ms == pytest.approx([200, 500, 100, 300, 200])
    assert found.kinds == {"queued": 3, "result": 1, "busy": 1}


def test_peak_counts_the_most_within_any_one_second() -> None:
    assert peak([0.0, 0.5, 0.99, 1.0, 1.2]) == (4, 0.5)
    assert peak([]) == (0, 0.0)


def test_rates_find_chats_paced_closer_than_a_second() -> None:
    sent = [
        (0.0, 1, "sendMessage"), (0.95, 1, "editMessageText"),  # pacing, late on the way
        (0.0, 2, "sendMessage"), (0.2, 2, "sendPhoto"),  # too close
        (0.1, 3, "sendMessage"), (0.3, 3, "deleteMessage"), (0.4, 3, "sendChatAction"),
    ]  # fmt: skip
    calls = [(at, FakeCall(m, {"chat_id": chat})) for at, chat, m in sent]
    r = rates(messages(calls), sending=(0.0, 1.0))
    assert r.sent == 5 and r.by_method["sendMessage"] == 3
    assert (r.peak_overall, r.peak_chat, r.chats_over, r.chats_close) == (5, 2, 2, 1)
    assert r.closest_s == pytest.approx(0.2)
