"""Results that come late or after a restart: decided by the delivery loop from the job row.

The bot is stopped while the worker finishes, the emulator's clock moves past the interaction
token's 15 minutes, and a new bot process delivers: to the channel (mentioning the person, the
job id as nonce), by DM where the channel is gone or the bot can't post there, or not at all
where DMs are closed too, and then /results has it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bots.core.messages import t
from storage.models import JobStatus
from tests.e2e.discord_harness import DiscordStack, discord_stack
from tests.e2e.discord_steps import Person, answered, ask, person, result_of
from tests.e2e.harness import settle

pytestmark = pytest.mark.e2e

TOKEN_LIFETIME_S = 15 * 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiscordStack]:
    with discord_stack(tmp_path_factory.mktemp("discord-later"), worker=True) as stack:
        yield stack


def finished_while_away(
    stack: DiscordStack, who: Person, expire: bool = True, **where: object
) -> dict:
    """Ask, stop the bot, let the worker finish, let the token expire, start a new bot."""
    asked = ask(stack, who, "ghibli", seed=who.id % 50, **where)
    answered(stack, asked, "the status")
    stack.stop_bot()
    deadline = time.monotonic() + 60
    while not all(j.status == JobStatus.DONE for j in stack.jobs(who.id)):
        assert time.monotonic() < deadline, "the worker did not finish"
        time.sleep(0.1)
    if expire:
        stack.emulator.advance(TOKEN_LIFETIME_S + 60)
    stack.start_bot()
    return asked


def posts_with_files(stack: DiscordStack, channel: int) -> list[dict]:
    return [m for m in stack.emulator.channel_messages(channel) if m.get("attachments")]


def test_after_the_token_expired_the_result_goes_to_the_channel_once(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    asked = finished_while_away(stack, who)
    [post] = emu.wait_for(lambda: posts_with_files(stack, who.channel), 30.0, "a channel post")
    [job] = stack.jobs(who.id)
    assert post["content"].startswith(f"<@{who.id}> ")
    assert t("result", "en", style="Ghibli", left=2) in post["content"]
    assert post["nonce"] == job.id[:25]
    assert emu.followups(asked["id"]) == []
    assert not emu.calls_of("followup", ok=None, token=asked["token"])  # expired: never tried
    settle()
    assert len(posts_with_files(stack, who.channel)) == 1


def test_when_the_channel_is_gone_the_result_comes_by_dm(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    emu.delete_channel(who.channel)
    finished_while_away(stack, who)

    def dm_post() -> list[dict]:
        dm = emu.dm_channel_of(who.id)
        return posts_with_files(stack, dm) if dm else []

    [post] = emu.wait_for(dm_post, 30.0, "a direct message")
    assert post["content"] == t("result", "en", style="Ghibli", left=2)  # no mention in a DM


def test_a_user_install_where_the_bot_is_no_member_answers_by_dm(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack, bot_member=False)
    finished_while_away(stack, who, installs="user")
    emu.wait_for(lambda: emu.dm_channel_of(who.id), 30.0, "a direct message")
    assert emu.channel_messages(who.channel) == []
    assert not emu.calls_of("channel_message", ok=False, channel_id=who.channel)


def test_with_dms_closed_too_the_result_waits_in_results(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack, bot_member=False)
    emu.close_dms(who.id)
    finished_while_away(stack, who, installs="user")
    emu.wait_for(lambda: emu.calls_of("channel_message", ok=False), 30.0, "a refused DM")
    settle()
    asked = emu.slash("results", who.user, who.channel, installs="user")
    assert answered(stack, asked) == t("results_list", "en", count=1, hours=24)
    shown = emu.original(asked["id"])
    assert shown is not None and len(shown["attachments"]) == 1


def test_a_restart_while_jobs_wait_delivers_once_and_old_buttons_still_work(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    old = result_of(stack, ask(stack, who, "arcane", seed=44))
    [old_job] = stack.jobs(who.id)
    asked = finished_while_away(stack, who, expire=False)  # the token still lives
    result = result_of(stack, asked)
    assert result["content"] == t("result", "en", style="Ghibli", left=1)
    settle()
    assert len(emu.followups(asked["id"])) == 1
    again = emu.press(f"sb:again:{old_job.id}:ghibli", who.user, who.channel, old)
    assert result_of(stack, again)["content"] == t("result", "en", style="Ghibli", left=0)
