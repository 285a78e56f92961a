"""Telegram end to end with real images: the real PTB Application on the Bot API emulator, a
real worker process (classic backend), Redis and PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from bots.core.messages import t
from storage.db import transaction
from tests.e2e.emulator import TOKEN, Call
from tests.e2e.harness import Stack, photo_bytes, settle
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e

RESULT_WAIT_S = 60.0


def result_for(stack: Stack, chat: int, reply_to: int) -> Call:
    """Wait for the styled photo that answers message `reply_to`."""
    emu = stack.emulator

    def found() -> Call | None:
        for call in emu.calls_of("sendPhoto", chat_id=chat) + emu.calls_of(
            "sendDocument", chat_id=chat
        ):
            if call.params.get("reply_parameters", {}).get("message_id") == reply_to:
                return call
        return None

    return emu.wait_for(found, RESULT_WAIT_S, f"a result in chat {chat}")  # type: ignore[no-any-return]


def texts_to(stack: Stack, chat: int) -> list[str]:
    return [c.params["text"] for c in stack.emulator.calls_of("sendMessage", chat_id=chat)]


def test_photo_with_a_caption_comes_back_styled_as_a_reply(live: Stack, uid: int) -> None:
    emu, photo = live.emulator, photo_bytes(1)
    sent = emu.send_photo(uid, user(uid), photo, caption="Ghibli please")
    result = result_for(live, uid, sent["message_id"])

    assert result.method == "sendPhoto"
    assert result.params["caption"] == t("result", "en", style="Ghibli", left=2)
    styled = np.asarray(Image.open(io.BytesIO(result.files["photo"])), dtype=np.int16)
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"), dtype=np.int16)
    assert styled.shape == original.shape and np.abs(styled - original).mean() > 5
    # The largest size was downloaded, once; the status message went when the result came.
    full_size = sent["photo"][-1]["file_id"]
    assert [c.params["file_id"] for c in emu.calls_of("getFile")].count(full_size) == 1
    status = emu.calls_of("sendMessage", chat_id=uid)[0]
    assert status.params["text"].startswith("Got it! Your Ghibli image is queued")
    status_id = status.result["message_id"]
    emu.wait_for(lambda: emu.calls_of("deleteMessage", chat_id=uid, message_id=status_id))
    assert live.used(f"telegram:{uid}") == 1


def test_no_token_in_the_database(live: Stack) -> None:
    with transaction(live.runtime.engine) as s:
        rows = s.execute(text("SELECT * FROM jobs")).all()
    assert rows
    assert not any(TOKEN in str(value) or "/file/bot" in str(value) for r in rows for value in r)


def test_the_fourth_request_of_a_free_user_is_refused_and_nothing_queued(
    live: Stack, uid: int
) -> None:
    emu, who = live.emulator, user(uid)
    for seed in range(3):  # one at a time: a free user has one image in flight
        sent = emu.send_photo(uid, who, photo_bytes(10 + seed), caption="/arcane")
        result_for(live, uid, sent["message_id"])
    emu.send_photo(uid, who, photo_bytes(13), caption="/arcane")
    emu.wait_for(lambda: any("used all 3 images" in x for x in texts_to(live, uid)))
    assert len(live.jobs(f"telegram:{uid}")) == 3
    assert live.used(f"telegram:{uid}") == 3


def test_the_same_update_twice_is_one_job_one_charge_one_reply(live: Stack, uid: int) -> None:
    emu = live.emulator
    sent = emu.send_photo(uid, user(uid), photo_bytes(20), caption="ghibli")
    emu.inject({"message": sent})  # delivered again, as after a crash or a webhook retry
    result_for(live, uid, sent["message_id"])
    settle()
    assert len(live.jobs(f"telegram:{uid}")) == 1 and live.used(f"telegram:{uid}") == 1
    assert len(emu.calls_of("sendPhoto", chat_id=uid)) == 1
    assert len(texts_to(live, uid)) == 1  # the status message only


def test_after_a_restart_the_same_update_is_still_one_job(live: Stack, uid: int) -> None:
    emu = live.emulator
    sent = emu.send_photo(uid, user(uid), photo_bytes(21), caption="ghibli")
    result_for(live, uid, sent["message_id"])
    live.bot.handlers.seen = type(live.bot.handlers.seen)()  # the process memory is gone
    emu.inject({"message": sent})
    emu.wait_for(lambda: t("duplicate", "en") in texts_to(live, uid))
    assert len(live.jobs(f"telegram:{uid}")) == 1 and live.used(f"telegram:{uid}") == 1
    assert len(emu.calls_of("sendPhoto", chat_id=uid)) == 1


def test_an_image_sent_as_a_file_is_styled(live: Stack, uid: int) -> None:
    png = photo_bytes(30, fmt="PNG")
    sent = live.emulator.send_document(uid, user(uid), png, "image/png", "me.png", caption="ghibli")
    result = result_for(live, uid, sent["message_id"])
    assert Image.open(io.BytesIO(result.files["photo"])).size == (320, 240)


def test_a_photo_then_a_tap_on_the_style_keyboard(live: Stack, uid: int) -> None:
    emu, who = live.emulator, user(uid)
    photo = emu.send_photo(uid, who, photo_bytes(40))
    keyboard = emu.wait_for(lambda: emu.calls_of("sendMessage", chat_id=uid))[0]
    assert keyboard.params["text"] == t("pick_style", "en")
    buttons = [b for row in keyboard.params["reply_markup"]["inline_keyboard"] for b in row]
    assert {b["callback_data"] for b in buttons} >= {"style:ghibli", "style:arcane"}
    emu.press(who, keyboard.result, "style:arcane")
    result = result_for(live, uid, photo["message_id"])
    assert "Arcane" in result.params["caption"]
    assert emu.calls_of("answerCallbackQuery")
    # The keyboard becomes the status message; a fast worker may deliver the result before
    # the handler's edit lands, so wait for the edit rather than expect it already.
    status_id = keyboard.result["message_id"]
    edits = emu.wait_for(
        lambda: emu.calls_of("editMessageText", chat_id=uid, message_id=status_id),
        what="the keyboard edited into the status",
    )
    assert "queued" in edits[0].params["text"]


def test_a_style_command_then_the_next_photo(live: Stack, uid: int) -> None:
    emu, who = live.emulator, user(uid)
    emu.user_message(uid, who, text="/ghibli")
    wanted = t("send_photo_for_style", "en", style="Ghibli")
    emu.wait_for(lambda: wanted in texts_to(live, uid))
    photo = emu.send_photo(uid, who, photo_bytes(50))
    result_for(live, uid, photo["message_id"])
    assert t("pick_style", "en") not in texts_to(live, uid)


def test_a_reply_to_a_photo_with_a_style_command(live: Stack, uid: int) -> None:
    emu, who = live.emulator, user(uid)
    photo = emu.send_photo(uid, who, photo_bytes(60), caption="my cat")
    emu.wait_for(lambda: t("pick_style", "en") in texts_to(live, uid))  # no style named
    command = emu.user_message(uid, who, text="/arcane", reply_to=photo)
    result = result_for(live, uid, command["message_id"])
    assert "Arcane" in result.params["caption"]


def test_an_album_counts_photo_by_photo(live: Stack, uid: int) -> None:
    emu, who = live.emulator, user(uid)
    emu.send_photo(uid, who, photo_bytes(70), caption="ghibli", media_group_id="album1")
    emu.send_photo(uid, who, photo_bytes(71), media_group_id="album1")
    emu.wait_for(lambda: t("quota_in_flight", "en") in texts_to(live, uid))
    assert len(live.jobs(f"telegram:{uid}")) == 1  # a free user has one image in flight
    assert t("pick_style", "en") not in texts_to(live, uid)


def test_a_429_storm_and_a_502_still_deliver_everything_once(
    live: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    emu = live.emulator
    users = [5101, 5102, 5103]
    emu.fail("sendMessage", 429, times=3, retry_after=1)
    emu.fail("sendPhoto", 429, times=2, retry_after=1)
    emu.fail("sendPhoto", 502, times=1)
    sent = {u: emu.send_photo(u, user(u), photo_bytes(u), caption="ghibli") for u in users}
    for u, message in sent.items():
        result_for(live, u, message["message_id"])
    settle()
    for u in users:
        assert len(emu.calls_of("sendPhoto", chat_id=u)) == 1, u
        (status,) = texts_to(live, u)  # one status message each, no apology
        assert status.startswith("Got it! Your Ghibli image is queued"), status
        assert len(live.jobs(f"telegram:{u}")) == 1 and live.used(f"telegram:{u}") == 1
    assert len(emu.calls_of("sendPhoto", ok=False)) == 3
    assert len(emu.calls_of("sendMessage", ok=False)) == 3
    assert not [r for r in caplog.records if "update_failed" in r.getMessage()]


def test_results_sends_the_kept_results_again_as_one_album(live: Stack, uid: int) -> None:
    emu, who = live.emulator, user(uid)
    for seed in (31, 32):
        sent = emu.send_photo(uid, who, photo_bytes(seed), caption="/arcane")
        result_for(live, uid, sent["message_id"])
    emu.user_message(uid, who, text="/results")
    album = emu.wait_for(lambda: emu.calls_of("sendMediaGroup", chat_id=uid), what="an album")[0]
    assert len(album.result) == 2 and len(album.files) == 2
    assert album.result[0]["caption"] == t("results_list", "en", count=2, hours=24)
