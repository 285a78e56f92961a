"""Discord before any styling (no worker: jobs stay queued): registration, refusals that cost
nothing, admin rights, progress edits and the private commands."""

from __future__ import annotations

import pytest

from bots.core.messages import t
from tests.e2e.discord_harness import ADMIN_ID, DiscordStack
from tests.e2e.discord_payloads import PRIVILEGED
from tests.e2e.discord_steps import EPHEMERAL, answered, ask, person
from tests.e2e.harness import photo_bytes, settle

pytestmark = pytest.mark.e2e

ADMIN_VERBS = {
    "grant": [{"name": "amount", "type": 4, "value": 5}],
    "setlimit": [
        {"name": "tier", "type": 3, "value": "free"},
        {"name": "amount", "type": 4, "value": 9},
    ],
    "settier": [{"name": "tier", "type": 3, "value": "pro"}],
    "ban": [],
    "unban": [],
    "capacity": [{"name": "mode", "type": 3, "value": "closed"}],
    "stats": [],
    "whois": [],
    "refund": [{"name": "charge", "type": 3, "value": "ch-1"}],
    "appeals": [],
    "release": [{"name": "job", "type": 3, "value": "f" * 32}],
    "confirm": [{"name": "job", "type": 3, "value": "f" * 32}],
}
TAKES_A_USER = {"grant", "settier", "ban", "unban", "whois"}


def test_commands_are_registered_for_both_installs_and_every_context(
    discord_idle: DiscordStack,
) -> None:
    emu = discord_idle.emulator
    commands = {c["name"]: c for c in emu.commands()}
    assert {"ghibli", "arcane", "stylize", "Stylize image", "quota", "styles", "cancel"} <= set(
        commands
    )
    assert {"results", "forget", "help", "admin"} <= set(commands)
    for command in commands.values():
        assert sorted(command["integration_types"]) == [0, 1]
        assert sorted(command["contexts"]) == [0, 1, 2]
    assert commands["Stylize image"]["type"] == 3
    image = commands["ghibli"]["options"][0]
    assert (image["name"], image["type"], image["required"]) == ("image", 11, True)
    styles = commands["stylize"]["options"][1]
    assert [c["value"] for c in styles["choices"]] == ["ghibli", "arcane"]
    admin = commands["admin"]
    assert str(admin["default_member_permissions"]) == "8"  # hidden from ordinary members
    assert {o["name"] for o in admin["options"]} == set(ADMIN_VERBS)
    grant = next(o for o in admin["options"] if o["name"] == "grant")
    assert [(o["name"], o["type"]) for o in grant["options"]] == [("user", 6), ("amount", 4)]


def test_only_unprivileged_intents_are_asked_for(discord_idle: DiscordStack) -> None:
    [identify] = discord_idle.emulator.identifies()
    assert identify["intents"] & PRIVILEGED == 0


def test_a_restart_with_the_same_commands_does_not_sync_again(discord_idle: DiscordStack) -> None:
    emu = discord_idle.emulator
    assert len(emu.calls_of("sync_global")) == 1
    discord_idle.stop_bot()
    discord_idle.start_bot()
    assert len(emu.calls_of("sync_global")) == 1 and len(emu.identifies()) == 2


def test_a_non_image_attachment_is_refused_unseen_and_costs_nothing(
    discord_idle: DiscordStack,
) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    who = person(stack)
    pdf = emu.attachment(b"%PDF-1.4 not a photo", filename="cv.pdf", content_type="application/pdf")
    option = {"name": "image", "type": 11, "value": pdf["id"]}
    asked = emu.slash("ghibli", who.user, who.channel, options=[option], attachments=[pdf])
    assert answered(stack, asked) == t("image_unsupported_format", "en")
    assert emu.original(asked["id"])["flags"] & EPHEMERAL
    assert not emu.calls_of("cdn", attachment_id=pdf["id"])
    assert stack.jobs(who.id) == [] and stack.used(who.id) == 0


def test_an_attachment_over_the_size_limit_is_refused_unseen(discord_idle: DiscordStack) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    who = person(stack)
    big = emu.attachment(photo_bytes(1), size=25 * 1024 * 1024)
    option = {"name": "image", "type": 11, "value": big["id"]}
    asked = emu.slash("arcane", who.user, who.channel, options=[option], attachments=[big])
    assert answered(stack, asked) == t("image_too_big_file", "en", mb=20.0)
    assert not emu.calls_of("cdn", attachment_id=big["id"])
    assert stack.jobs(who.id) == []


def test_a_broken_image_is_refused_after_download_and_costs_nothing(
    discord_idle: DiscordStack,
) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    who = person(stack)
    broken = emu.attachment(b"\xff\xd8\xff\xe0 truncated jpeg")
    option = {"name": "image", "type": 11, "value": broken["id"]}
    asked = emu.slash("arcane", who.user, who.channel, options=[option], attachments=[broken])
    assert answered(stack, asked) in {t(f"image_{c}", "en") for c in ("corrupt", "not_image")}
    assert stack.jobs(who.id) == [] and stack.used(who.id) == 0


def test_a_message_without_an_image_gets_a_clear_answer(discord_idle: DiscordStack) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    who = person(stack)
    posted = emu.post_message(who.channel, who.user, "just words")
    menu = emu.context_menu("Stylize image", who.user, who.channel, posted)
    assert answered(stack, menu) == t("no_image_in_message", "en")


def test_a_guild_administrator_who_is_no_bot_admin_can_run_no_admin_command(
    discord_idle: DiscordStack,
) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    boss, victim = person(stack), person(stack)
    for verb, options in ADMIN_VERBS.items():
        options = list(options)
        users = []
        if verb in TAKES_A_USER:
            options.insert(0, {"name": "user", "type": 6, "value": victim.user["id"]})
            users = [victim.user]
        asked = emu.slash(
            "admin",
            boss.user,
            boss.channel,
            options=options,
            users=users,
            subcommand=verb,
            admin=True,
        )
        assert answered(stack, asked, verb) == t("not_allowed", "en")
        assert emu.original(asked["id"])["flags"] & EPHEMERAL
    refused = stack.audit(boss.id)
    assert sorted(a.action for a in refused) == sorted(ADMIN_VERBS)
    assert not any(a.allowed for a in refused)


def test_capacity_closed_gives_a_private_try_later(discord_idle: DiscordStack) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    admin, who = emu.user(ADMIN_ID), person(stack)
    mode = [{"name": "mode", "type": 3, "value": "closed"}]
    closed = emu.slash("admin", admin, who.channel, options=mode, subcommand="capacity")
    assert answered(stack, closed) == t("capacity_set", "en", before="open", after="closed")
    try:
        asked = ask(stack, who, "ghibli", seed=3)
        assert answered(stack, asked) == t("closed", "en")
        assert emu.original(asked["id"])["flags"] & EPHEMERAL
        assert stack.jobs(who.id) == [] and stack.used(who.id) == 0
    finally:
        mode = [{"name": "mode", "type": 3, "value": "open"}]
        emu.slash("admin", admin, who.channel, options=mode, subcommand="capacity")
        settle(1.0)


def test_the_status_follows_the_queue_and_cancel_says_so(discord_idle: DiscordStack) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    first, second = person(stack), person(stack)
    mine = ask(stack, first, "ghibli", seed=5)
    assert "#" in answered(stack, mine)
    theirs = ask(stack, second, "arcane", seed=6)
    before = answered(stack, theirs)
    cancel = emu.slash("cancel", first.user, first.channel)
    assert answered(stack, cancel) == t("cancelled", "en")
    # The cancelled request's status says so; the one behind it moves up, by an edit.
    emu.wait_for(lambda: emu.original(mine["id"])["content"] == t("cancelled", "en"), 10.0)
    emu.wait_for(lambda: emu.original(theirs["id"])["content"] != before, 10.0, "a status edit")
    moved = emu.original(theirs["id"])["content"]
    position = next(s for s in before.split() if s.startswith("#"))
    assert position not in moved and "#" in moved
    assert stack.used(first.id) == 0
    assert answered(stack, emu.slash("cancel", second.user, second.channel)) == t("cancelled", "en")


def test_private_commands_answer_privately(discord_idle: DiscordStack) -> None:
    stack, emu = discord_idle, discord_idle.emulator
    who = person(stack)
    expected = {
        "quota": "Used today: 0 of 3",
        "styles": "/ghibli",
        "help": "Stylize image",
        "results": t("results_none", "en", hours=24),
        "forget": t("forgotten", "en"),
    }
    for name, part in expected.items():
        asked = emu.slash(name, who.user, who.channel)
        assert part in answered(stack, asked, name)
        assert emu.original(asked["id"])["flags"] & EPHEMERAL
