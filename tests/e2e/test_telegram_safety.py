"""Telegram end to end, the safety check that explains: a real worker whose classifier flags
everything holds a photo's result back; the person gets the explanation with a review button and
no image, uncharged; the button asks for a review (SQL: jobs.appealed_at), and an admin's
/release makes the delivery loop send the stored image, still free. The real PTB Application on
the Bot API emulator, PostgreSQL, Redis and a `stylebot worker` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bots.core.messages import t
from storage.db import transaction
from storage.models import AuditEntry, Job, JobStatus, LedgerEntry
from tests.e2e.emulator import Call
from tests.e2e.harness import Stack, photo_bytes, running_stack, settle
from tests.e2e.methods import user
from tests.e2e.safety_flagger import SPEC

pytestmark = pytest.mark.e2e

ADMIN = 999
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The bot, and a worker (its environment from this process's) that flags every result."""
    with running_stack(tmp_path) as stack:
        monkeypatch.setenv("STYLEBOT_SAFETY_CLASSIFIER", SPEC)
        monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the worker imports the factory by name
        stack.start_worker(tmp_path / "worker.log")
        yield stack


def replies_to(stack: Stack, method: str, chat: int, message: dict[str, Any]) -> list[Call]:
    return [
        c
        for c in stack.emulator.calls_of(method, chat_id=chat)
        if c.params.get("reply_parameters", {}).get("message_id") == message["message_id"]
    ]


def ledger(stack: Stack, job_id: str) -> list[str]:
    with transaction(stack.runtime.engine) as s:
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).all()
        return sorted(e.kind for e in entries)


def job_row(stack: Stack, job_id: str) -> Job:
    with transaction(stack.runtime.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def audited(stack: Stack, job_id: str) -> list[tuple[str, str]]:
    with transaction(stack.runtime.engine) as s:
        query = select(AuditEntry).where(AuditEntry.target == job_id)
        rows = s.exec(query.order_by(col(AuditEntry.id))).all()
        return [(row.action, row.actor) for row in rows]


def test_a_held_result_is_explained_with_a_review_button_and_released_by_an_admin(
    stack: Stack,
) -> None:
    emu, uid = stack.emulator, 8301
    who, me = user(uid), f"telegram:{uid}"
    photo = emu.send_photo(uid, who, photo_bytes(3), caption="ghibli")
    explained = emu.wait_for(
        lambda: [
            c
            for c in replies_to(stack, "sendMessage", uid, photo)
            if c.params["text"] == t("safety_held", "en", style="Ghibli")
        ],
        60,
        "the held-back explanation",
    )[0]
    [job] = stack.jobs(me)
    assert (job.status, job.error_code, job.hold_label) == (JobStatus.FAILED, "held", "nsfw")
    assert job.held_at is not None and job.review is None and job.appealed_at is None
    assert job.result_path and Path(job.result_path).is_file()  # kept for the review
    [[button]] = explained.params["reply_markup"]["inline_keyboard"]
    assert button == {"text": t("appeal_button", "en"), "callback_data": f"appeal:{job.id}"}
    assert emu.calls_of("sendPhoto", chat_id=uid) == []  # no image, and no black one
    assert emu.calls_of("sendDocument", chat_id=uid) == []
    assert stack.used(me) == 0 and ledger(stack, job.id) == ["refund", "reserve"]

    stranger = user(8302)
    emu.press(stranger, explained.result, f"appeal:{job.id}")  # a group member's tap, say
    emu.wait_for(lambda: emu.calls_of("answerCallbackQuery", text=t("appeal_not_yours", "en")))
    assert job_row(stack, job.id).appealed_at is None

    emu.press(who, explained.result, f"appeal:{job.id}")
    shown = explained.result["message_id"]
    edit = emu.wait_for(
        lambda: emu.calls_of("editMessageText", chat_id=uid, message_id=shown),
        20,
        "the explanation edited into the answer",
    )[0]
    assert edit.params["text"] == t("appeal_sent", "en")
    assert "reply_markup" not in edit.params and "reply_markup" not in emu.messages[(uid, shown)]
    assert job_row(stack, job.id).appealed_at is not None
    assert audited(stack, job.id) == [("appeal", me)]

    asked = emu.user_message(ADMIN, user(ADMIN), text=f"/release {job.id}")
    said = emu.wait_for(lambda: replies_to(stack, "sendMessage", ADMIN, asked), 20, "/release")
    assert said[0].params["text"] == t("appeal_released", "en", job=job.id, user=me)
    delivered = emu.wait_for(
        lambda: replies_to(stack, "sendPhoto", uid, photo), 30, "the released image"
    )[0]
    assert delivered.params["caption"] == t("safety_released", "en", style="Ghibli")
    assert delivered.files["photo"] == Path(job.result_path).read_bytes()  # the stored image
    released = emu.wait_for(
        lambda: (row := job_row(stack, job.id)).delivered_at is not None and row,
        10,
        "the job marked delivered",
    )
    assert (released.status, released.review) == (JobStatus.DONE, "released")
    assert stack.used(me) == 0 and ledger(stack, job.id) == ["refund", "reserve"]  # still free
    assert audited(stack, job.id) == [("appeal", me), ("release", f"telegram:{ADMIN}")]
    settle()
    assert len(emu.calls_of("sendPhoto", chat_id=uid)) == 1
