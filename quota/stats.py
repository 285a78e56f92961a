"""Read-only figures for /stats, /capacity and /whois."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from quota.capacity import recent_rate
from storage.models import Job, JobStatus, Rejection, User

TIERS = ("free", "plus", "pro")


def _by_tier(rows: list[tuple[str, int]]) -> dict[str, int]:
    counts = dict.fromkeys(TIERS, 0)
    for tier, n in rows:
        counts[tier] = counts.get(tier, 0) + int(n)
    return counts


def queued_by_tier(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Job.tier, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.tier)
    ).all()
    return _by_tier(list(rows))


def jobs_today_by_tier(session: Session, day: date, status: str | None = None) -> dict[str, int]:
    query = select(Job.tier, func.count()).where(Job.quota_day == day)
    if status is not None:
        query = query.where(Job.status == status)
    return _by_tier(list(session.exec(query.group_by(Job.tier)).all()))


def rejections_since(session: Session, since: datetime) -> dict[str, int]:
    rows = session.exec(
        select(Rejection.tier, func.count())
        .where(col(Rejection.created_at) >= since)
        .group_by(Rejection.tier)
    ).all()
    return _by_tier(list(rows))


def user_done_count(session: Session, user_id: str) -> int:
    n = session.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user_id, Job.status == JobStatus.DONE)
    ).one()
    return int(n)


def find_user(session: Session, ref: str) -> User | None:
    """A user by platform-qualified id, or by a username the bot has seen (with or without @)."""
    if ":" in ref:
        return session.get(User, ref)
    name = ref.removeprefix("@").lower()
    matches = session.exec(select(User).where(func.lower(User.username) == name).limit(2)).all()
    return matches[0] if len(matches) == 1 else None


def rate_last_5_min(session: Session, now: datetime) -> float:
    return recent_rate(session, now, 300.0)
