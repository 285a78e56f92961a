"""The relax lane on Discord: a request refused because the free tier is paused is offered
"Do it when there's room"; the press admits it into the relax lane (SQL: jobs.lane = 'relax'),
and once there is room again (capacity open, a worker up) its result comes to the channel
where it was asked, hours later as far as the interaction is concerned.

No worker runs until the last test starts one: relax jobs stay queued until then."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from bots.core.messages import t
from quota.controls import capacity_mode
from storage.db import transaction
from storage.models import Job, JobStatus, Lane, Offer
from tests.e2e.discord_harness import ADMIN_ID, DiscordStack, discord_stack
from tests.e2e.discord_steps import (
    EPHEMERAL,
    RESULT_WAIT_S,
    Person,
    answered,
    ask,
    custom_ids,
    looks_styled,
    person,
)
from tests.e2e.harness import settle

pytestmark = pytest.mark.e2e

TOKEN_LIFETIME_S = 15 * 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiscordStack]:
    with discord_stack(tmp_path_factory.mktemp("discord-relax")) as stack:
        yield stack


def capacity(stack: DiscordStack, where: Person, mode: str, before: str) -> None:
    """/admin capacity mode:<mode>, by the bot's admin."""
    emu = stack.emulator
    option = [{"name": "mode", "type": 3, "value": mode}]
    admin = emu.user(ADMIN_ID)
    asked = emu.slash("admin", admin, where.channel, options=option, subcommand="capacity")
    said = answered(stack, asked, f"capacity {mode}")
    assert said == t("capacity_set", "en", before=before, after=mode)


@pytest.fixture
def paused(stack: DiscordStack) -> Iterator[Person]:
    """The free tier paused for the test (open again after it); a place to run /admin."""
    desk = person(stack)
    capacity(stack, desk, "paused-free", before="open")
    try:
        yield desk
    finally:
        if _mode(stack) != "open":
            capacity(stack, desk, "open", before="paused-free")


def _mode(stack: DiscordStack) -> str:
    with transaction(stack.runtime.engine) as s:
        return capacity_mode(s)


def offers(stack: DiscordStack, who: Person) -> list[Offer]:
    with transaction(stack.runtime.engine) as s:
        return list(s.exec(select(Offer).where(Offer.user_id == f"discord:{who.id}")))


def refused_with_offer(stack: DiscordStack, who: Person, seed: int) -> tuple[dict, dict, str]:
    """Ask while paused: the private refusal with its later button; (asked, refusal, offer id)."""
    asked = ask(stack, who, "ghibli", seed=seed)
    text = answered(stack, asked, "the refusal")
    refusal = stack.emulator.original(asked["id"])
    assert refusal is not None
    assert text == f"{t('paused_free', 'en')} {t('later_offer', 'en')}"
    assert refusal["flags"] & EPHEMERAL
    [offer] = [o for o in offers(stack, who) if o.job_id is None]
    [button] = refusal["components"][0]["components"]
    assert button["custom_id"] == f"later:{offer.id}"
    assert button["label"] == t("later_button", "en")
    [photo] = asked["data"]["resolved"]["attachments"].values()
    assert (offer.reason, offer.source_ref) == ("paused", photo["url"])
    assert stack.jobs(who.id) == [] and stack.used(who.id) == 0  # a refusal costs nothing
    return asked, refusal, offer.id


def press_later(stack: DiscordStack, who: Person, refusal: dict, offer_id: str) -> dict[str, Any]:
    emu = stack.emulator
    pressed = emu.press(f"later:{offer_id}", who.user, who.channel, refusal)
    emu.wait_for(lambda: emu.acknowledged(pressed["id"]), 10.0, "the press acknowledged")
    return pressed


def shown_after_press(stack: DiscordStack, pressed: dict, before: str) -> dict:
    """The refusal message once the press's answer replaced it."""
    emu = stack.emulator

    def replaced() -> dict | None:
        shown = emu.original(pressed["id"])
        return shown if shown and shown["content"] != before else None

    return dict(emu.wait_for(replaced, 30.0, "the press's answer"))


def test_a_paused_free_tier_offers_later_and_the_press_queues_a_relax_job(
    stack: DiscordStack, paused: Person
) -> None:
    emu, who = stack.emulator, person(stack)
    asked, refusal, offer_id = refused_with_offer(stack, who, seed=1)
    pressed = press_later(stack, who, refusal, offer_id)
    assert emu.acknowledged(pressed["id"]) == {"type": 6}  # an update of the refusal itself
    shown = shown_after_press(stack, pressed, refusal["content"])
    assert shown["id"] == refusal["id"] and shown["components"] == []  # the button is gone
    assert shown["content"].startswith(t("later_queued", "en", style="Ghibli", eta="§")[:20])
    [job] = stack.jobs(who.id)
    assert (job.lane, job.status, job.style) == (Lane.RELAX, JobStatus.QUEUED, "ghibli")
    assert job.source_ref == offers(stack, who)[0].source_ref
    assert [o.job_id for o in offers(stack, who)] == [job.id]
    assert stack.used(who.id) == 1  # reserved now, refunded should it never be made
    # The status board (which edits waiting requests' answers through the asking interaction's
    # token) leaves a relax job alone: the honest answer stays, not a queue position.
    settle(1.5)
    assert emu.original(asked["id"]) == shown
    quota = emu.slash("quota", who.user, who.channel)
    assert "waiting for a quiet moment" in answered(stack, quota, "/quota")


def test_a_second_press_and_a_stranger_s_press_queue_nothing_more(
    stack: DiscordStack, paused: Person
) -> None:
    emu, who, stranger = stack.emulator, person(stack), person(stack)
    _, refusal, offer_id = refused_with_offer(stack, who, seed=2)
    forged = press_later(stack, stranger, refusal, offer_id)  # ephemeral: a forged press
    assert shown_after_press(stack, forged, refusal["content"])["content"] == t("later_gone", "en")
    assert stack.jobs(stranger.id) == [] and stack.jobs(who.id) == []
    first = press_later(stack, who, refusal, offer_id)
    shown = shown_after_press(stack, first, t("later_gone", "en"))
    again = press_later(stack, who, refusal, offer_id)  # a double click, before the edit showed
    assert shown_after_press(stack, again, shown["content"])["content"] == t("later_taken", "en")
    assert len(stack.jobs(who.id)) == 1 and stack.used(who.id) == 1
    # Their one free relax place is taken: the next refusal offers no button.
    refused = ask(stack, who, "arcane", seed=3)
    assert answered(stack, refused) == t("paused_free", "en")
    assert (emu.original(refused["id"]) or {}).get("components") == []
    assert len(offers(stack, who)) == 1


def test_the_button_still_works_after_a_bot_restart(stack: DiscordStack, paused: Person) -> None:
    """The offer lives in SQL and the button's custom id carries it: no view kept in memory."""
    who = person(stack)
    _, refusal, offer_id = refused_with_offer(stack, who, seed=5)
    stack.stop_bot()
    stack.start_bot()
    shown = shown_after_press(stack, press_later(stack, who, refusal, offer_id), refusal["content"])
    assert shown["components"] == []
    [job] = stack.jobs(who.id)
    assert (job.lane, job.status) == (Lane.RELAX, JobStatus.QUEUED)


def test_once_there_is_room_the_result_comes_to_the_channel_where_it_was_asked(
    stack: DiscordStack, paused: Person, tmp_path_factory: pytest.TempPathFactory
) -> None:
    emu, who = stack.emulator, person(stack)
    asked, refusal, offer_id = refused_with_offer(stack, who, seed=4)
    shown_after_press(stack, press_later(stack, who, refusal, offer_id), refusal["content"])
    [job] = stack.jobs(who.id)
    assert job.lane == Lane.RELAX
    emu.advance(TOKEN_LIFETIME_S + 60)  # hours later: the interaction's token is long spent
    capacity(stack, paused, "open", before="paused-free")
    stack.start_worker(tmp_path_factory.mktemp("relax-worker") / "worker.log")

    def posted() -> list[dict]:
        return [m for m in emu.channel_messages(who.channel) if m.get("attachments")]

    [post] = emu.wait_for(posted, RESULT_WAIT_S, "the relax result in the channel")
    assert post["content"] == f"<@{who.id}> " + t("result", "en", style="Ghibli", left=2)
    assert post["nonce"] == job.id[:25] and looks_styled(stack, post, seed=4)
    assert f"sb:more:{job.id}" in custom_ids(post)

    def delivered() -> Job | None:
        with transaction(stack.runtime.engine) as s:
            found = s.get(Job, job.id)
            return found if found is not None and found.delivered_at is not None else None

    done = emu.wait_for(delivered, 10.0, "the job marked delivered")
    assert (done.status, done.lane) == (JobStatus.DONE, Lane.RELAX)
    assert stack.used(who.id) == 1
    settle(1.0)
    assert len(posted()) == 1 and emu.followups(asked["id"]) == []
