"""Telegram end to end before styling: commands, refusals, groups and status messages. The real
PTB Application on the Bot API emulator, Redis and PostgreSQL; no worker, so jobs stay queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bots.core import Reply, ReplyTarget
from bots.core.messages import t
from quota.lifecycle import finish_failed
from storage.db import transaction
from storage.models import Job
from tests.e2e.harness import Stack, photo_bytes, png_claiming, settle
from tests.e2e.methods import BOT, user

pytestmark = pytest.mark.e2e

ADMIN = 999
MB = 1024 * 1024


def texts_to(stack: Stack, chat: int) -> list[str]:
    return [c.params["text"] for c in stack.emulator.calls_of("sendMessage", chat_id=chat)]


def said(stack: Stack, chat: int, text: str) -> None:
    stack.emulator.wait_for(lambda: text in texts_to(stack, chat), 20, repr(text))


def test_the_command_menu_is_set_in_english_and_arabic(idle: Stack) -> None:
    menus = {c.params.get("language_code"): c for c in idle.emulator.calls_of("setMyCommands")}
    assert set(menus) == {None, "ar"}
    for lang, call in menus.items():
        commands = {c["command"]: c["description"] for c in call.params["commands"]}
        assert {"start", "help", "styles", "quota", "cancel", "forget", "ghibli"} <= set(commands)
        assert commands["quota"] == t("cmd_quota", lang or "en")


def test_start_welcomes_explains_and_says_what_is_left(idle: Stack, uid: int) -> None:
    idle.emulator.user_message(uid, user(uid, "ar"), text="/start")
    idle.emulator.wait_for(lambda: texts_to(idle, uid))
    (reply,) = texts_to(idle, uid)
    assert reply.startswith(t("welcome", "ar")) and t("help", "ar") in reply
    assert "3" in reply.rsplit("\n\n", 1)[1]  # the allowance line


def test_cancel_takes_back_the_waiting_image_and_its_status(idle: Stack, uid: int) -> None:
    emu, who = idle.emulator, user(uid)
    emu.send_photo(uid, who, photo_bytes(1), caption="ghibli")
    status = emu.wait_for(lambda: emu.calls_of("sendMessage", chat_id=uid))[0]
    emu.user_message(uid, who, text="/cancel")
    said(idle, uid, t("cancelled", "en"))
    status_id = status.result["message_id"]
    emu.wait_for(lambda: emu.calls_of("deleteMessage", chat_id=uid, message_id=status_id))
    (job,) = idle.jobs(f"telegram:{uid}")
    assert job.status == "cancelled" and idle.used(f"telegram:{uid}") == 0


def test_the_status_message_follows_the_queue(idle: Stack) -> None:
    emu, first, second = idle.emulator, 6001, 6002
    emu.send_photo(first, user(first), photo_bytes(2), caption="ghibli")
    emu.wait_for(lambda: any("#1" in x for x in texts_to(idle, first)))
    emu.send_photo(second, user(second), photo_bytes(3), caption="ghibli")
    emu.wait_for(lambda: any("#2" in x for x in texts_to(idle, second)))
    emu.user_message(first, user(first), text="/cancel")
    emu.wait_for(
        lambda: any(
            "#1" in c.params["text"] for c in emu.calls_of("editMessageText", chat_id=second)
        ),
        what="the second status edited to #1",
    )


def test_capacity_closed_by_an_admin_gets_a_polite_try_later(idle: Stack, uid: int) -> None:
    emu = idle.emulator
    emu.user_message(uid, user(uid), text="/capacity closed")
    said(idle, uid, t("not_allowed", "en"))
    emu.user_message(ADMIN, user(ADMIN), text="/capacity closed")
    said(idle, ADMIN, t("capacity_set", "en", before="open", after="closed"))
    try:
        emu.send_photo(uid, user(uid), photo_bytes(4), caption="ghibli")
        said(idle, uid, t("closed", "en"))
    finally:
        emu.user_message(ADMIN, user(ADMIN), text="/capacity open")
        said(idle, ADMIN, t("capacity_set", "en", before="closed", after="open"))
    assert idle.jobs(f"telegram:{uid}") == [] and idle.used(f"telegram:{uid}") == 0


@pytest.mark.parametrize(
    ("data", "mime", "name", "key"),
    [
        (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            "application/pdf",
            "cv.pdf",
            "image_unsupported_format",
        ),
        (b"", "image/png", "empty.png", "image_empty"),
        (png_claiming(14_000, 14_000), "image/png", "huge.png", "image_too_many_pixels"),
    ],
    ids=["pdf", "zero-bytes", "14000x14000"],
)
def test_files_that_are_no_photo_get_a_clear_reply_and_no_charge(
    idle: Stack, uid: int, data: bytes, mime: str, name: str, key: str
) -> None:
    idle.emulator.send_document(uid, user(uid), data, mime, name, caption="ghibli")
    said(idle, uid, t(key, "en", mb=20, mp=40))
    assert idle.jobs(f"telegram:{uid}") == [] and idle.used(f"telegram:{uid}") == 0


def test_a_pdf_is_refused_before_any_download(idle: Stack, uid: int) -> None:
    emu = idle.emulator
    sent = emu.send_document(uid, user(uid), b"%PDF-1.4", "application/pdf", "a.pdf")
    said(idle, uid, t("image_unsupported_format", "en"))
    file_id = sent["document"]["file_id"]
    assert not emu.calls_of("getFile", file_id=file_id)


def test_sizes_over_the_download_limit_are_never_fetched(idle: Stack, uid: int) -> None:
    emu, who = idle.emulator, user(uid)
    photo = emu.send_photo(uid, who, photo_bytes(5), huge=30 * MB, caption="ghibli")
    emu.wait_for(lambda: any("queued" in x for x in texts_to(idle, uid)))
    fetched = [c.params["file_id"] for c in emu.calls_of("getFile")]
    assert photo["photo"][2]["file_id"] in fetched and photo["photo"][3]["file_id"] not in fetched
    big = {"file_id": "Fbig", "file_unique_id": "Fbig", "file_size": 25 * MB}
    emu.user_message(uid, who, caption="ghibli", document={**big, "mime_type": "image/jpeg"})
    said(idle, uid, t("image_too_big_file", "en", mb=20))
    assert not emu.calls_of("getFile", file_id="Fbig")


def test_a_group_only_answers_what_is_meant_for_the_bot(idle: Stack) -> None:
    emu, group, alice, bob, carol = idle.emulator, -7001, user(7101), user(7102), user(7103)
    emu.send_photo(group, alice, photo_bytes(6))  # a holiday photo among friends
    emu.user_message(group, alice, text="nice one")
    emu.user_message(group, alice, text="/help@some_other_bot")
    settle()
    assert not [c for c in emu.calls if c.params.get("chat_id") == group]
    emu.send_photo(group, alice, photo_bytes(7), caption="/ghibli")
    emu.send_photo(group, bob, photo_bytes(8), caption=f"@{BOT['username']} arcane please")
    emu.send_photo(group, carol, photo_bytes(9), caption=f"@{BOT['username']}")
    emu.wait_for(lambda: len([x for x in texts_to(idle, group) if "queued" in x]) == 2)
    said(idle, group, t("pick_style", "en"))  # a mention without a style: the keyboard
    assert len(idle.jobs("telegram:7101")) == len(idle.jobs("telegram:7102")) == 1


def test_only_the_sender_of_a_photo_picks_its_style(idle: Stack) -> None:
    emu, group, alice, bob = idle.emulator, -7002, user(7201), user(7202)
    photo = emu.send_photo(group, alice, photo_bytes(10), caption=f"@{BOT['username']}")
    said(idle, group, t("pick_style", "en"))
    keyboard = emu.calls_of("sendMessage", chat_id=group)[0].result
    emu.press(bob, keyboard, "style:ghibli")
    emu.wait_for(lambda: emu.calls_of("answerCallbackQuery", text=t("not_your_photo", "en")))
    assert idle.jobs("telegram:7202") == [] and photo


def test_a_result_too_odd_for_a_photo_goes_as_a_document(idle: Stack, tmp_path: Path) -> None:
    wide = tmp_path / "wide.jpg"
    Image.new("RGB", (4200, 150), (200, 120, 40)).save(wide, "JPEG")  # 28:1, over 20:1
    reply = Reply(t("result", "en", style="Ghibli", left=1), image=wide, job_id="j" * 32)
    idle.run(idle.bot.sender.send(ReplyTarget("telegram", "6201", "5"), reply))
    (sent,) = idle.emulator.calls_of("sendDocument", chat_id=6201)
    assert sent.params["caption"] == reply.text and sent.files["document"] == wide.read_bytes()
    assert not idle.emulator.calls_of("sendPhoto", chat_id=6201)


def test_a_failing_update_gets_an_apology(
    idle: Stack, uid: int, caplog: pytest.LogCaptureFixture
) -> None:
    idle.emulator.fail("sendMessage", 500, times=1)
    idle.emulator.user_message(uid, user(uid), text="/help")
    said(idle, uid, t("busy_error", "en"))
    assert any("update_failed" in r.getMessage() for r in caplog.records)


def test_an_admin_command_as_a_reply_names_the_person(idle: Stack) -> None:
    emu, group, member = idle.emulator, -7003, user(7301)
    asked = emu.user_message(group, member, text="/quota")
    emu.wait_for(lambda: texts_to(idle, group))
    emu.user_message(group, user(ADMIN), text="/grant 2", reply_to=asked)
    said(idle, group, t("granted", "en", user="telegram:7301", credits=2, n=2))


def test_a_failed_job_gets_a_short_apology_and_is_not_counted(idle: Stack, uid: int) -> None:
    emu = idle.emulator
    photo = emu.send_photo(uid, user(uid), photo_bytes(11), caption="ghibli")
    status = emu.wait_for(lambda: emu.calls_of("sendMessage", chat_id=uid))[0]
    (job,) = idle.jobs(f"telegram:{uid}")
    with transaction(idle.runtime.engine) as s:  # what a worker does when styling fails
        assert finish_failed(s, s.get(Job, job.id), "backend")  # type: ignore[arg-type]
    said(idle, uid, t("failed", "en"))
    apology = emu.calls_of("sendMessage", chat_id=uid)[-1]
    assert apology.params["reply_parameters"]["message_id"] == photo["message_id"]
    status_id = status.result["message_id"]
    emu.wait_for(lambda: emu.calls_of("deleteMessage", chat_id=uid, message_id=status_id))
    assert idle.used(f"telegram:{uid}") == 0
