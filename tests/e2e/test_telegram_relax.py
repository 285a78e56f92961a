"""Telegram end to end, the relax lane: a refusal while free requests are paused offers "Do it
when there's room"; pressing it admits the photo (fetched again by its file id) as a relax job,
and once there is room the result arrives as a reply to the photo. The real PTB Application on
the Bot API emulator, PostgreSQL, Redis, and a real worker started once there is room."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bots.core.messages import t
from storage.db import transaction
from storage.models import JobStatus, Lane, Offer
from tests.e2e.emulator import TOKEN, Call
from tests.e2e.harness import Stack, photo_bytes, running_stack, settle
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e

ADMIN = 999


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No worker at first: what is admitted stays queued until a test starts one."""
    with running_stack(tmp_path_factory.mktemp("relax")) as stack:
        yield stack


def sent_to(stack: Stack, chat: int) -> list[Call]:
    return stack.emulator.calls_of("sendMessage", chat_id=chat)


def capacity(stack: Stack, mode: str, before: str) -> None:
    emu = stack.emulator
    asked = emu.user_message(ADMIN, user(ADMIN), text=f"/capacity {mode}")
    answers = emu.wait_for(
        lambda: [
            c.params["text"]
            for c in sent_to(stack, ADMIN)
            if c.params.get("reply_parameters", {}).get("message_id") == asked["message_id"]
        ],
        20,
        f"the answer to /capacity {mode}",
    )
    assert answers == [t("capacity_set", "en", before=before, after=mode)]


def offers_of(stack: Stack, user_id: str) -> list[Offer]:
    with transaction(stack.runtime.engine) as s:
        return list(s.exec(select(Offer).where(Offer.user_id == user_id)).all())


def refused_with_offer(
    stack: Stack, chat: int, who: dict[str, Any], seed: int
) -> tuple[dict[str, Any], Call]:
    """A photo sent while free requests are paused: the refusal, with its one button."""
    emu = stack.emulator
    photo = emu.send_photo(chat, who, photo_bytes(seed), caption="ghibli")
    return photo, answer_to(stack, chat, photo, "the refusal")


def answer_to(stack: Stack, chat: int, message: dict[str, Any], what: str) -> Call:
    """The bot's message in answer to `message`."""

    def found() -> list[Call]:
        return [
            c
            for c in sent_to(stack, chat)
            if c.params.get("reply_parameters", {}).get("message_id") == message["message_id"]
        ]

    return stack.emulator.wait_for(found, 20, what)[0]


def button_of(call: Call) -> dict[str, Any]:
    [[button]] = call.params["reply_markup"]["inline_keyboard"]
    return dict(button)


def test_paused_offer_pressed_then_made_when_there_is_room_and_once_only(
    stack: Stack, tmp_path: Path
) -> None:
    emu, uid = stack.emulator, 8101
    who, me = user(uid), f"telegram:{uid}"
    capacity(stack, "paused-free", before="open")
    try:
        photo, refusal = refused_with_offer(stack, uid, who, seed=1)
        assert refusal.params["text"].startswith(t("paused_free", "en"))
        assert t("later_offer", "en") in refusal.params["text"]
        [offer] = offers_of(stack, me)
        assert button_of(refusal) == {
            "text": t("later_button", "en"),
            "callback_data": f"later:{offer.id}",
        }
        full_size = photo["photo"][-1]["file_id"]
        assert offer.source_ref == full_size and TOKEN not in offer.source_ref
        assert offer.job_id is None and stack.jobs(me) == [] and stack.used(me) == 0

        emu.press(who, refusal.result, f"later:{offer.id}")
        offer_msg = refusal.result["message_id"]
        edit = emu.wait_for(
            lambda: emu.calls_of("editMessageText", chat_id=uid, message_id=offer_msg),
            20,
            "the offer edited into the answer",
        )[0]
        assert "reply_markup" not in edit.params  # the button is gone
        assert "reply_markup" not in emu.messages[(uid, offer_msg)]
        [job] = stack.jobs(me)
        assert (job.lane, job.status) == (Lane.RELAX, JobStatus.QUEUED)
        promise = t("later_queued_unknown", "en", style="Ghibli", ttl="1 day")
        assert edit.params["text"].startswith(promise.split(" when there's room")[0])
        [offer] = offers_of(stack, me)
        assert offer.job_id == job.id and job.source_ref == full_size
        assert [c.params["file_id"] for c in emu.calls_of("getFile")].count(full_size) == 1
        assert emu.calls_of("answerCallbackQuery")
    finally:
        capacity(stack, "open", before="paused-free")

    stack.start_worker(tmp_path / "worker.log")
    result = emu.wait_for(
        lambda: [
            c
            for c in emu.calls_of("sendPhoto", chat_id=uid)
            if c.params.get("reply_parameters", {}).get("message_id") == photo["message_id"]
        ],
        60,
        "the relax result, as a reply to the photo",
    )[0]
    assert result.params["caption"] == t("result", "en", style="Ghibli", left=2)
    [job] = stack.jobs(me)
    assert job.status == JobStatus.DONE and job.lane == Lane.RELAX and stack.used(me) == 1
    settle()
    assert len(emu.calls_of("sendPhoto", chat_id=uid)) == 1
    the_same_photo_offered_again_sends_that_result(stack, uid)


def the_same_photo_offered_again_sends_that_result(stack: Stack, uid: int) -> None:
    """The same photo and style, refused and offered again: the press answers with the kept
    result, uncharged, and makes nothing new."""
    emu = stack.emulator
    who, me = user(uid), f"telegram:{uid}"
    capacity(stack, "paused-free", before="open")
    try:
        photo, refusal = refused_with_offer(stack, uid, who, seed=1)
        emu.press(who, refusal.result, button_of(refusal)["callback_data"])
        again = emu.wait_for(
            lambda: [
                c
                for c in emu.calls_of("sendPhoto", chat_id=uid)
                if c.params.get("reply_parameters", {}).get("message_id") == photo["message_id"]
            ],
            20,
            "the earlier result, sent again",
        )[0]
    finally:
        capacity(stack, "open", before="paused-free")
    assert again.params["caption"] == t("duplicate_result", "en")
    offer_msg = refusal.result["message_id"]
    emu.wait_for(lambda: emu.calls_of("deleteMessage", chat_id=uid, message_id=offer_msg))
    assert len(stack.jobs(me)) == 1 and stack.used(me) == 1  # nothing new made or counted


def test_only_the_person_refused_can_take_the_offer(stack: Stack) -> None:
    emu, group, alice, bob = stack.emulator, -8201, user(8202), user(8203)
    capacity(stack, "paused-free", before="open")
    try:
        photo = emu.send_photo(group, alice, photo_bytes(2), caption="/ghibli")
        refusal = answer_to(stack, group, photo, "the refusal")
        data = button_of(refusal)["callback_data"]
        emu.press(bob, refusal.result, data)
        emu.wait_for(lambda: emu.calls_of("answerCallbackQuery", text=t("not_your_photo", "en")))
        settle()
        assert stack.jobs("telegram:8203") == [] and stack.jobs("telegram:8202") == []
        assert "reply_markup" in emu.messages[(group, refusal.result["message_id"])]
        [offer] = offers_of(stack, "telegram:8202")
        assert offer.job_id is None
    finally:
        capacity(stack, "open", before="paused-free")


def test_after_a_restart_the_offer_can_still_be_taken(stack: Stack) -> None:
    emu, uid = stack.emulator, 8301
    who, me = user(uid), f"telegram:{uid}"
    capacity(stack, "paused-free", before="open")
    try:
        _, refusal = refused_with_offer(stack, uid, who, seed=3)
        stack.restart_bot()  # the offer lives in SQL, not in the old process
        emu.press(who, refusal.result, button_of(refusal)["callback_data"])
        emu.wait_for(lambda: stack.jobs(me), 20, "the relax job")
    finally:
        capacity(stack, "open", before="paused-free")
    [job] = stack.jobs(me)
    assert job.lane == Lane.RELAX
    [offer] = offers_of(stack, me)
    assert offer.job_id == job.id


def test_an_expired_offer_is_answered_politely_and_admits_nothing(stack: Stack) -> None:
    emu, uid = stack.emulator, 8401
    who, me = user(uid), f"telegram:{uid}"
    capacity(stack, "paused-free", before="open")
    real_clock = stack.runtime.clock
    try:
        _, refusal = refused_with_offer(stack, uid, who, seed=4)
        ttl = timedelta(minutes=stack.settings.offer_ttl_minutes)
        stack.runtime.clock = lambda: real_clock() + ttl + timedelta(minutes=1)
        emu.press(who, refusal.result, button_of(refusal)["callback_data"])
        offer_msg = refusal.result["message_id"]
        edit = emu.wait_for(
            lambda: emu.calls_of("editMessageText", chat_id=uid, message_id=offer_msg), 20
        )[0]
    finally:
        stack.runtime.clock = real_clock
        capacity(stack, "open", before="paused-free")
    assert edit.params["text"] == t("later_gone", "en")
    assert stack.jobs(me) == [] and stack.used(me) == 0
