"""Admin commands on SQLite and PostgreSQL: effects, audit, refusals and malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bots.console.adapter import ConsoleChat
from bots.core import Admin, AdminRequest, Command, Core
from storage.db import transaction
from storage.models import AuditEntry, Control, User

pytestmark = pytest.mark.sql

ADMIN = "telegram:1"


@pytest.fixture
def admin(core: Core) -> Admin:
    core.rt.settings.admins = (ADMIN,)
    ConsoleChat(core, "console:ann").handle_line("/quota")  # people the bot has seen
    with transaction(core.rt.engine) as s:
        s.get(User, "console:ann").username = "Ann"  # type: ignore[union-attr]
    ConsoleChat(core, "console:bob").handle_line("/quota")
    return Admin(core)


def run(
    admin: Admin, text: str, actor: str = ADMIN, reply_to: str | None = None
) -> tuple[str, bool]:
    name, *args = text.split()
    reply, ok = admin.run(AdminRequest(actor, "en", Command(name, tuple(args)), reply_to))
    return reply.text, ok


def audit_rows(admin: Admin) -> list[AuditEntry]:
    with transaction(admin.rt.engine) as s:
        return list(s.exec(select(AuditEntry).order_by(AuditEntry.id)).all())


def user(admin: Admin, user_id: str) -> User:
    with transaction(admin.rt.engine) as s:
        found = s.get(User, user_id)
        assert found is not None
        return found


def test_non_admin_is_refused_and_the_attempt_recorded(admin: Admin) -> None:
    text, ok = run(admin, "grant console:ann 5", actor="telegram:666")
    assert not ok and "only admins" in text
    assert user(admin, "console:ann").extra_credits == 0
    [row] = audit_rows(admin)
    assert (row.actor, row.action, row.allowed) == ("telegram:666", "grant", False)


def test_grant_by_id_username_and_reply(admin: Admin) -> None:
    assert run(admin, "grant console:ann 5") == (
        "Done: console:ann has 5 extra images now (+5).",
        True,
    )
    assert run(admin, "grant @ann 2")[1]
    assert run(admin, "grant 1", reply_to="console:bob")[1]
    assert user(admin, "console:ann").extra_credits == 7
    assert user(admin, "console:bob").extra_credits == 1
    rows = audit_rows(admin)
    assert [(r.target, r.before, r.after) for r in rows] == [
        ("console:ann", "0", "5"),
        ("console:ann", "5", "7"),
        ("console:bob", "0", "1"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("grant console:ann -3", "not a valid number"),
        ("grant console:ann 0", "not a valid number"),
        ("grant console:ann 99999999999", "not a valid number"),
        ("grant console:ann lots", "not a valid number"),
        ("grant console:nobody 3", "don't know the user"),
        ("grant @ghost 3", "don't know the user"),
        ("grant console:ann", "Usage: /grant <user> <n>"),
        ("grant", "Usage: /grant <user> <n>"),
        ("setlimit gold 5", "no tier gold"),
        ("setlimit free -1", "not a valid number"),
        ("setlimit free", "Usage: /setlimit <tier> <n>"),
        ("settier console:ann diamond", "no tier diamond"),
        ("settier console:ann", "Usage: /settier <user> <tier>"),
        ("ban", "Usage: /ban <user> [reason]"),
        ("unban", "Usage: /unban <user>"),
        ("capacity sideways", "no capacity mode sideways"),
        ("capacity open now", "no capacity mode open"),
        ("whois", "Usage: /whois <user>"),
        ("stats please", "Usage: /stats"),
    ],
)
def test_malformed_commands_change_nothing(admin: Admin, text: str, expected: str) -> None:
    reply, ok = run(admin, text)
    assert not ok and expected in reply
    assert audit_rows(admin) == []
    assert (
        user(admin, "console:ann").extra_credits == 0 and user(admin, "console:ann").tier == "free"
    )
    with transaction(admin.rt.engine) as s:
        assert s.exec(select(Control)).all() == []


def test_setlimit_changes_what_the_tier_may_use(admin: Admin, core: Core, photo: Path) -> None:
    assert run(admin, "setlimit free 1")[0] == "Done: the free daily limit is 1 (was 3)."
    chat = ConsoleChat(core, "console:ann")
    assert "Used today: 0 of 1" in chat.handle_line("/quota").text  # type: ignore[union-attr]
    assert chat.handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    chat.handle_line("/cancel")
    assert chat.handle_line(f"/ghibli {photo}").job_id  # the refunded image can be used again  # type: ignore[union-attr]


def test_settier_ban_unban_whois(admin: Admin, core: Core, photo: Path) -> None:
    assert run(admin, "settier @ann pro")[0] == "Done: console:ann is on pro now (was free)."
    assert (
        "Tier: pro. Used today: 0 of 200"
        in ConsoleChat(core, "console:ann").handle_line("/quota").text
    )  # type: ignore[union-attr]
    assert run(admin, "ban console:bob spamming")[1]
    assert (
        "can't use this bot"
        in ConsoleChat(core, "console:bob").handle_line(f"/ghibli {photo}").text
    )  # type: ignore[union-attr]
    whois, _ = run(admin, "whois console:bob")
    assert "console:bob" in whois and "banned" in whois and "not banned" not in whois
    assert run(admin, "unban console:bob")[1]
    assert ConsoleChat(core, "console:bob").handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    assert [r.action for r in audit_rows(admin)] == ["settier", "ban", "unban"]


def test_capacity_modes_and_stats(admin: Admin, core: Core, photo: Path) -> None:
    assert "Capacity mode: open" in run(admin, "capacity")[0]
    assert run(admin, "capacity closed")[0] == "Done: capacity mode is closed (was open)."
    closed = ConsoleChat(core, "console:ann").handle_line(f"/ghibli {photo}")
    assert closed is not None and "closed for maintenance" in closed.text and not closed.job_id
    run(admin, "capacity paused-free")
    paused = ConsoleChat(core, "console:ann").handle_line(f"/ghibli {photo}")
    assert paused is not None and "free tier is paused" in paused.text
    run(admin, "settier console:bob plus")
    assert ConsoleChat(core, "console:bob").handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    stats, _ = run(admin, "stats")
    assert "Waiting by tier: free 0, plus 1, pro 0" in stats
    assert "requests: free 2, plus 1, pro 0" in stats and "turned away: free 2, plus 0" in stats
    modes = [(r.before, r.after) for r in audit_rows(admin) if r.action == "capacity"]
    assert modes == [("open", "closed"), ("closed", "paused-free")]


def test_grant_credits_are_used_after_the_daily_allowance_and_refunded_back(
    admin: Admin, core: Core, photo: Path
) -> None:
    run(admin, "setlimit free 0")
    run(admin, "grant console:ann 1")
    chat = ConsoleChat(core, "console:ann")
    assert chat.handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    assert user(admin, "console:ann").extra_credits == 0
    chat.handle_line("/cancel")
    assert user(admin, "console:ann").extra_credits == 1  # refunded to where it came from
