"""A Telegram bot restarted while people wait: their status messages (kept in SQL) keep being
edited as the queue moves and are removed when the result arrives; an update delivered again
after the restart is still one job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.core.messages import t
from tests.e2e.harness import Stack, photo_bytes, running_stack, settle
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("restart")) as stack:
        yield stack


def status_of(stack: Stack, chat: int) -> tuple[int, str]:
    """The status message in `chat` (its id and its text as last sent or edited)."""
    emu = stack.emulator
    first = emu.wait_for(lambda: emu.calls_of("sendMessage", chat_id=chat), 30, "a status")[0]
    message_id = first.result["message_id"]
    edits = emu.calls_of("editMessageText", chat_id=chat, message_id=message_id)
    return message_id, (edits[-1].params["text"] if edits else first.params["text"])


def test_after_a_restart_statuses_still_move_and_go_with_the_result(
    stack: Stack, tmp_path: Path
) -> None:
    emu = stack.emulator
    first, second = 3101, 3102
    emu.send_photo(first, user(first), photo_bytes(1), caption="ghibli")
    status_of(stack, first)
    emu.send_photo(second, user(second), photo_bytes(2), caption="arcane")
    theirs, before = status_of(stack, second)
    assert "#2" in before
    stack.restart_bot()
    emu.user_message(first, user(first), text="/cancel")
    emu.wait_for(lambda: status_of(stack, second)[1] != before, 30, "an edit by the new bot")
    assert "#1" in status_of(stack, second)[1]
    stack.start_worker(tmp_path / "worker.log")
    emu.wait_for(lambda: emu.calls_of("sendPhoto", chat_id=second), 60, "the result")
    emu.wait_for(
        lambda: emu.calls_of("deleteMessage", chat_id=second, message_id=theirs), 30, "removed"
    )


def test_an_update_delivered_again_after_a_restart_is_one_job(stack: Stack) -> None:
    emu, chat = stack.emulator, 3201
    sent = emu.send_photo(chat, user(chat), photo_bytes(3), caption="ghibli")
    emu.wait_for(lambda: emu.calls_of("sendPhoto", chat_id=chat), 60, "the result")
    stack.restart_bot()
    emu.inject({"message": sent})  # Telegram hands the same message over again
    emu.wait_for(
        lambda: any(
            c.params["text"] == t("duplicate", "en")
            for c in emu.calls_of("sendMessage", chat_id=chat)
        ),
        30,
        "the repeat noticed",
    )
    settle(1.0)
    assert len(stack.jobs(f"telegram:{chat}")) == 1 and stack.used(f"telegram:{chat}") == 1
    assert len(emu.calls_of("sendPhoto", chat_id=chat)) == 1
