"""Runtime levers in SQL: capacity mode, surge level, tier limit overrides; the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from quota.tiers import Tier
from storage.db import upsert_insert
from storage.models import AuditEntry, Control, User

MODES = ("open", "paused-free", "closed", "auto")
MODE_KEY = "capacity_mode"
SURGE_KEY = "surge_level"
_SNAPSHOT = "stylebot.controls"  # session.info key: (transaction, {key: value})


def _snapshot(session: Session) -> dict[str, str]:
    """All control rows, read once per transaction (a handful of rows; admission reads several).

    Tied to the session's current transaction, so a later transaction reads afresh; put and
    swap drop it, so a read after a write in the same transaction sees the write.
    """
    cached = session.info.get(_SNAPSHOT)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1]
    values = {key: value for key, value in session.exec(select(Control.key, Control.value))}
    session.info[_SNAPSHOT] = (session.get_transaction(), values)
    return values


def get(session: Session, key: str, default: str) -> str:
    return _snapshot(session).get(key, default)


def put(session: Session, key: str, value: str, now: datetime) -> None:
    session.info.pop(_SNAPSHOT, None)
    stmt = upsert_insert(session, Control).values(key=key, value=value, updated_at=now)
    session.execute(
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": now})
    )


def swap(session: Session, key: str, old: str, new: str, now: datetime) -> bool:
    """Compare-and-set, so two bot processes can't both step the same level."""
    session.info.pop(_SNAPSHOT, None)
    # A missing row holds the default `old`; create it so the conditional UPDATE can match.
    session.execute(
        upsert_insert(session, Control)
        .values(key=key, value=old, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    result = session.execute(
        update(Control)
        .where(col(Control.key) == key, col(Control.value) == old)
        .values(value=new, updated_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def capacity_mode(session: Session) -> str:
    return get(session, MODE_KEY, "open")


def surge_level(session: Session) -> int:
    return int(get(session, SURGE_KEY, "0"))


def tier_limit(session: Session, tier: Tier) -> int:
    """The tier's daily limit: an admin's /setlimit if any, else the configured one."""
    return int(get(session, f"limit:{tier.name}", str(tier.daily_limit)))


def free_limit_now(session: Session, tier: Tier, floor: int) -> tuple[int, bool]:
    """The free limit after auto surge: (limit, lowered?)."""
    base = tier_limit(session, tier)
    if capacity_mode(session) != "auto":
        return base, False
    lowered = max(min(floor, base), base - surge_level(session))
    return lowered, lowered < base


def user_limit(session: Session, user: User, tier: Tier, floor: int) -> tuple[int, bool]:
    """What this person may use today: a custom limit, else their tier's (surge applied)."""
    if user.daily_limit is not None:
        return user.daily_limit, False
    if tier.name == "free":
        return free_limit_now(session, tier, floor)
    return tier_limit(session, tier), False


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    now: datetime,
    target: str | None = None,
    before: object = None,
    after: object = None,
    allowed: bool = True,
) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            target=target,
            before=None if before is None else str(before)[:200],
            after=None if after is None else str(after)[:200],
            allowed=allowed,
            created_at=now,
        )
    )
