"""Discord end to end with real images: the real discord.py client on the Discord emulator, a
real worker process (classic backend), Redis and PostgreSQL. Each kind of request ends in
exactly one follow-up with a styled image."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import text

from bots.core.messages import t
from storage.db import transaction
from tests.e2e.discord_emulator import TOKEN
from tests.e2e.discord_harness import ADMIN_ID, DiscordStack
from tests.e2e.discord_steps import (
    EPHEMERAL,
    answered,
    ask,
    custom_ids,
    looks_styled,
    person,
    result_of,
)
from tests.e2e.harness import photo_bytes, settle

pytestmark = pytest.mark.e2e


def test_a_style_command_ends_in_one_public_follow_up_with_the_styled_image(
    discord_live: DiscordStack,
) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    asked = ask(stack, who, "ghibli", seed=1)
    result = result_of(stack, asked)

    ack = emu.acknowledged(asked["id"])
    assert ack is not None and ack["type"] == 5 and ack["data"]["flags"] & EPHEMERAL
    assert result["content"] == t("result", "en", style="Ghibli", left=2)
    assert not result.get("flags", 0) & EPHEMERAL  # the result is public in the channel
    assert looks_styled(stack, result, seed=1)
    job_id = stack.jobs(who.id)[0].id
    assert f"sb:more:{job_id}" in custom_ids(result)
    assert f"sb:again:{job_id}:arcane" in custom_ids(result)
    # The status message went when the result came; exactly one follow-up was posted.
    emu.wait_for(lambda: emu.original(asked["id"]) is None, 10.0, "the status deleted")
    settle()
    assert len(emu.followups(asked["id"])) == 1
    assert stack.used(who.id) == 1


def test_stylize_takes_the_style_as_an_option(discord_live: DiscordStack) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    photo = emu.attachment(photo_bytes(2), filename="me.png", content_type="image/png")
    options = [
        {"name": "image", "type": 11, "value": photo["id"]},
        {"name": "style", "type": 3, "value": "arcane"},
    ]
    asked = emu.slash("stylize", who.user, who.channel, options=options, attachments=[photo])
    result = result_of(stack, asked)
    assert result["content"] == t("result", "en", style="Arcane", left=2)
    assert [j.style for j in stack.jobs(who.id)] == ["arcane"]


def test_the_message_menu_offers_styles_then_queues_the_choice(discord_live: DiscordStack) -> None:
    stack, emu = discord_live, discord_live.emulator
    who, friend = person(stack), emu.user(7_999_001)
    photo = emu.attachment(photo_bytes(3))
    posted = emu.post_message(who.channel, friend, "look at this", [photo])
    menu = emu.context_menu("Stylize image", who.user, who.channel, posted)
    assert answered(stack, menu) == t("pick_style", "en")
    picker = emu.original(menu["id"])
    assert picker is not None and picker["flags"] & EPHEMERAL
    assert picker["embeds"][0]["image"]["url"] == photo["url"]
    [select_id] = custom_ids(picker)
    chosen = emu.choose(select_id, ["arcane"], who.user, who.channel, picker)
    result = result_of(stack, chosen)
    assert looks_styled(stack, result, seed=3)
    assert [j.style for j in stack.jobs(who.id)] == ["arcane"]


def test_buttons_under_a_result_style_the_same_photo_again(discord_live: DiscordStack) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    first = result_of(stack, ask(stack, who, "ghibli", seed=4))
    [job] = stack.jobs(who.id)
    again = emu.press(f"sb:again:{job.id}:arcane", who.user, who.channel, first)
    second = result_of(stack, again)
    assert second["content"] == t("result", "en", style="Arcane", left=1)
    assert looks_styled(stack, second, seed=4)
    # "Another style": a private list, and the choice queues too.
    more = emu.press(f"sb:more:{job.id}", who.user, who.channel, first)
    listing = emu.wait_for(lambda: emu.original(more["id"]), 10.0, "the style list")
    assert listing["flags"] & EPHEMERAL and custom_ids(listing) == [f"sb:againpick:{job.id}"]
    choice = emu.choose(f"sb:againpick:{job.id}", ["ghibli"], who.user, who.channel, listing)
    third = result_of(stack, choice)  # the same photo and style today: the kept result, free
    assert third["content"] == t("duplicate_result", "en")
    assert sorted(j.style for j in stack.jobs(who.id)) == ["arcane", "ghibli"]
    assert stack.used(who.id) == 2


def test_only_the_owner_may_restyle_a_result(discord_live: DiscordStack) -> None:
    stack, emu = discord_live, discord_live.emulator
    owner, other = person(stack), person(stack)
    result = result_of(stack, ask(stack, owner, "ghibli", seed=5))
    [job] = stack.jobs(owner.id)
    pressed = emu.press(f"sb:again:{job.id}:arcane", other.user, owner.channel, result)
    assert answered(stack, pressed) == t("not_your_photo", "en")
    assert stack.jobs(other.id) == [] and len(stack.jobs(owner.id)) == 1


def test_the_same_interaction_delivered_twice_is_one_job(discord_live: DiscordStack) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    asked = ask(stack, who, "arcane", seed=6)
    emu.redeliver(asked)
    result_of(stack, asked)
    settle(1.0)
    assert len(stack.jobs(who.id)) == 1 and stack.used(who.id) == 1
    assert len(emu.followups(asked["id"])) == 1


def test_a_429_storm_still_delivers_everything_once(discord_live: DiscordStack) -> None:
    stack, emu = discord_live, discord_live.emulator
    people = [person(stack) for _ in range(3)]
    emu.fail("followup", 429, times=6, retry_after=0.3)
    emu.fail("edit_original", 429, times=4, retry_after=0.2)
    asked = [ask(stack, p, "ghibli", seed=10 + i) for i, p in enumerate(people)]
    for interaction in asked:
        result_of(stack, interaction)
    settle(1.0)
    assert [len(emu.followups(i["id"])) for i in asked] == [1, 1, 1]
    assert len(emu.calls_of("followup", ok=False)) >= 6  # the storm really happened


def test_a_follow_up_that_failed_with_a_5xx_is_retried_without_posting_twice(
    discord_live: DiscordStack,
) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    emu.fail("followup", 503, times=6)  # past discord.py's own 5 tries: the loop tries again
    asked = ask(stack, who, "ghibli", seed=20)
    result_of(stack, asked)
    settle(1.0)
    assert len(emu.followups(asked["id"])) == 1


def test_no_token_in_the_database(discord_live: DiscordStack) -> None:
    with transaction(discord_live.runtime.engine) as s:
        rows = (
            s.execute(text("SELECT * FROM jobs")).all()
            + s.execute(text("SELECT * FROM controls")).all()
        )
    assert rows
    assert not any(TOKEN in str(value) for r in rows for value in r)


def test_over_the_free_limit_a_private_quota_answer_then_a_grant_lets_them_go_on(
    discord_live: DiscordStack,
) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    for seed in (30, 31, 32):  # one at a time: a free user has one image in flight
        result_of(stack, ask(stack, who, "arcane", seed=seed))
    refused = ask(stack, who, "arcane", seed=33)
    assert "used all 3 images" in answered(stack, refused)
    assert emu.original(refused["id"])["flags"] & EPHEMERAL
    assert len(stack.jobs(who.id)) == 3 and stack.used(who.id) == 3

    admin = emu.user(ADMIN_ID)
    grant = emu.slash(
        "admin",
        admin,
        who.channel,
        options=[
            {"name": "user", "type": 6, "value": who.user["id"]},
            {"name": "amount", "type": 4, "value": 1},
        ],
        users=[who.user],
        subcommand="grant",
    )
    assert answered(stack, grant) == t("granted", "en", user=f"discord:{who.id}", credits=1, n=1)
    result_of(stack, ask(stack, who, "arcane", seed=34))
    assert len(stack.jobs(who.id)) == 4
    assert [a.allowed for a in stack.audit(ADMIN_ID) if a.action == "grant"] == [True]


def test_requests_work_in_threads_in_dms_and_where_only_the_user_installed_the_app(
    discord_live: DiscordStack,
) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    thread, dm = who.channel + 500_000, who.channel + 600_000
    emu.channel(thread, who.guild, kind="thread")
    emu.channel(dm, None, kind="dm", user_id=who.id)
    in_thread = ask(stack, replace(who, channel=thread), "ghibli", seed=40)
    assert looks_styled(stack, result_of(stack, in_thread), seed=40)
    in_dm = ask(stack, replace(who, channel=dm), "arcane", seed=41)
    assert looks_styled(stack, result_of(stack, in_dm), seed=41)
    visitor = person(stack, bot_member=False)  # the app is only on the visitor's own account
    elsewhere = ask(stack, visitor, "ghibli", seed=42, installs="user")
    assert looks_styled(stack, result_of(stack, elsewhere), seed=42)
    targets = {j.style: json.loads(j.reply_target) for j in stack.jobs(who.id)}
    assert targets["arcane"]["private"] and not targets["ghibli"]["private"]
    [visit] = stack.jobs(visitor.id)
    assert json.loads(visit.reply_target)["reachable"] is False


def test_a_refused_token_is_never_tried_again_and_the_result_goes_to_the_channel(
    discord_live: DiscordStack,
) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    emu.fail("followup", 401, times=1)  # Discord says the token is no good, however young
    asked = ask(stack, who, "arcane", seed=50)

    def posted() -> list[dict]:
        return [m for m in emu.channel_messages(who.channel) if m.get("attachments")]

    [post] = emu.wait_for(posted, 60.0, "the result in the channel")
    assert post["content"].startswith(f"<@{who.id}> ")
    settle(1.0)
    assert len(emu.calls_of("followup", ok=None, token=asked["token"])) == 1
    assert len(posted()) == 1


def test_a_result_stays_public_even_when_the_first_status_edit_failed(
    discord_live: DiscordStack,
) -> None:
    stack, emu = discord_live, discord_live.emulator
    who = person(stack)
    emu.fail("edit_original", 429, times=10, retry_after=0.05)  # the status is never filled
    asked = ask(stack, who, "ghibli", seed=60)
    result = result_of(stack, asked)
    assert not result.get("flags", 0) & EPHEMERAL
    settle(1.0)
    kept = [m for m in emu.followups(asked["id"]) if m.get("attachments")]
    assert [m["id"] for m in kept] == [result["id"]]
    assert emu.calls_of("delete_original", token=asked["token"])
    assert not emu.calls_of("delete_followup", ok=None, token=asked["token"])
