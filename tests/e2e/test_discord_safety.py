"""Discord end to end, the safety check that explains: a real worker whose classifier flags
everything holds a photo's result back; the person's answer becomes the explanation with an
"Ask for a review" button and no image, uncharged; the button asks for a review (SQL:
jobs.appealed_at) and survives a bot restart, being a dynamic item; `/admin release job:<id>`
makes the delivery loop send the stored image, still free."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bots.core.messages import t
from storage.db import transaction
from storage.models import AuditEntry, Job, JobStatus, LedgerEntry
from tests.e2e.discord_harness import ADMIN_ID, DiscordStack, discord_stack
from tests.e2e.discord_steps import answered, ask, custom_ids, looks_styled, person, result_of
from tests.e2e.harness import settle
from tests.e2e.safety_flagger import SPEC

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DiscordStack]:
    """The bot, and a worker (its environment from this process's) that flags every result."""
    with discord_stack(tmp_path) as stack:
        monkeypatch.setenv("STYLEBOT_SAFETY_CLASSIFIER", SPEC)
        monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the worker imports the factory by name
        stack.start_worker(tmp_path / "worker.log")
        yield stack


def job_row(stack: DiscordStack, job_id: str) -> Job:
    with transaction(stack.runtime.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def ledger(stack: DiscordStack, job_id: str) -> list[str]:
    with transaction(stack.runtime.engine) as s:
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).all()
        return sorted(e.kind for e in entries)


def audited(stack: DiscordStack, job_id: str) -> list[tuple[str, str]]:
    with transaction(stack.runtime.engine) as s:
        query = select(AuditEntry).where(AuditEntry.target == job_id)
        rows = s.exec(query.order_by(col(AuditEntry.id))).all()
        return [(row.action, row.actor) for row in rows]


def press(stack: DiscordStack, custom_id: str, who: Any, message: dict) -> dict[str, Any]:
    emu = stack.emulator
    pressed = emu.press(custom_id, who.user, who.channel, message)
    emu.wait_for(lambda: emu.acknowledged(pressed["id"]), 10.0, "the press acknowledged")
    return pressed


def test_a_held_result_is_explained_with_a_review_button_and_released_by_an_admin(
    stack: DiscordStack,
) -> None:
    emu, who, stranger = stack.emulator, person(stack), person(stack)
    asked = ask(stack, who, "ghibli", seed=6)
    held_text = t("safety_held", "en", style="Ghibli")

    def explained() -> dict | None:
        shown = emu.original(asked["id"])
        return shown if shown and shown["content"] == held_text else None

    shown = emu.wait_for(explained, 60.0, "the held-back explanation")
    [job] = stack.jobs(who.id)
    assert (job.status, job.error_code, job.hold_label) == (JobStatus.FAILED, "held", "nsfw")
    assert job.held_at is not None and job.appealed_at is None
    assert job.result_path and Path(job.result_path).is_file()  # kept for the review
    [button] = shown["components"][0]["components"]
    assert (button["custom_id"], button["label"]) == (f"appeal:{job.id}", t("appeal_button", "en"))
    assert not shown.get("attachments") and emu.followups(asked["id"]) == []  # no image at all
    assert stack.used(who.id) == 0 and ledger(stack, job.id) == ["refund", "reserve"]

    forged = press(stack, f"appeal:{job.id}", stranger, shown)  # not their job: told privately
    said = emu.wait_for(lambda: emu.followups(forged["id"]), 10.0, "the stranger's answer")
    assert said[0]["content"] == t("appeal_none", "en")
    assert job_row(stack, job.id).appealed_at is None
    assert emu.original(asked["id"]) == shown  # the explanation and its button stay

    stack.stop_bot()  # the button is a dynamic item: a restarted bot still answers it
    stack.start_bot()
    pressed = press(stack, f"appeal:{job.id}", who, shown)
    assert emu.acknowledged(pressed["id"]) == {"type": 6}  # an update of the explanation

    def replaced() -> dict | None:
        now = emu.original(pressed["id"])
        return now if now and now["content"] != held_text else None

    after = emu.wait_for(replaced, 30.0, "the press's answer")
    assert after["id"] == shown["id"] and after["components"] == []  # the button is gone
    assert after["content"] == t("appeal_sent", "en")
    assert job_row(stack, job.id).appealed_at is not None
    assert audited(stack, job.id) == [("appeal", f"discord:{who.id}")]

    admin = emu.user(ADMIN_ID)
    option = [{"name": "job", "type": 3, "value": job.id}]
    release = emu.slash("admin", admin, who.channel, options=option, subcommand="release")
    assert answered(stack, release, "/admin release") == t(
        "appeal_released", "en", job=job.id, user=f"discord:{who.id}"
    )
    post = result_of(stack, asked)  # the stored image, through the delivery loop
    assert post["content"] == t("safety_released", "en", style="Ghibli")
    assert looks_styled(stack, post, seed=6) and f"sb:more:{job.id}" in custom_ids(post)
    released = emu.wait_for(
        lambda: (row := job_row(stack, job.id)).delivered_at is not None and row,
        10.0,
        "the job marked delivered",
    )
    assert (released.status, released.review) == (JobStatus.DONE, "released")
    assert stack.used(who.id) == 0 and ledger(stack, job.id) == ["refund", "reserve"]  # free
    assert audited(stack, job.id) == [
        ("appeal", f"discord:{who.id}"),
        ("release", f"discord:{ADMIN_ID}"),
    ]
    settle()
    assert len([m for m in emu.followups(asked["id"]) if m.get("attachments")]) == 1
