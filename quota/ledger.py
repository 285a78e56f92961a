"""Reserve at enqueue, commit on success, refund on failure or cancel.

Each step is a conditional single statement, so concurrent requests can never over-grant:
the usage row is incremented only `WHERE used < limit` (an upsert on both SQLite and
PostgreSQL), and the ledger's unique (job_id, kind) makes commit and refund happen once.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, update
from sqlmodel import Session, select

from storage.db import upsert_insert as _insert
from storage.models import LedgerEntry, LedgerKind, Usage, User


class QuotaDenied(Exception):
    """Raised inside the admission transaction so that it rolls back whole."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "daily" | "in_flight"


def reserve(
    session: Session, *, user_id: str, job_id: str, day: date, daily_limit: int, in_flight_cap: int
) -> int:
    """Take one image of `day`'s allowance; return how many are now used. Raises QuotaDenied."""
    if daily_limit <= 0:
        raise QuotaDenied("daily")
    stmt = _insert(session, Usage).values(user_id=user_id, day=day, used=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "day"],
        set_={"used": Usage.used + 1},
        where=Usage.used < daily_limit,
    ).returning(Usage.used)
    used = session.execute(stmt).scalar_one_or_none()
    if used is None:
        raise QuotaDenied("daily")
    bumped = session.execute(
        update(User)
        .where(User.id == user_id, User.in_flight < in_flight_cap)  # type: ignore[arg-type]
        .values(in_flight=User.in_flight + 1)
    )
    if bumped.rowcount != 1:  # type: ignore[attr-defined]
        raise QuotaDenied("in_flight")
    session.add(LedgerEntry(job_id=job_id, user_id=user_id, day=day, kind=LedgerKind.RESERVE))
    return int(used)


def _record_once(session: Session, job_id: str, user_id: str, day: date, kind: str) -> bool:
    stmt = _insert(session, LedgerEntry).values(job_id=job_id, user_id=user_id, day=day, kind=kind)
    stmt = stmt.on_conflict_do_nothing(index_elements=["job_id", "kind"]).returning(LedgerEntry.id)
    return session.execute(stmt).scalar_one_or_none() is not None


def _release_in_flight(session: Session, user_id: str) -> None:
    session.execute(
        update(User)
        .where(User.id == user_id, User.in_flight > 0)  # type: ignore[arg-type]
        .values(in_flight=User.in_flight - 1)
    )


def commit(session: Session, *, job_id: str, user_id: str, day: date) -> bool:
    """The image was made: the reservation stands. False if already settled."""
    if not _record_once(session, job_id, user_id, day, LedgerKind.COMMIT):
        return False
    _release_in_flight(session, user_id)
    return True


def refund(session: Session, *, job_id: str, user_id: str, day: date) -> bool:
    """Give the reserved image back. False if already refunded."""
    if not _record_once(session, job_id, user_id, day, LedgerKind.REFUND):
        return False
    session.execute(
        update(Usage)
        .where(Usage.user_id == user_id, Usage.day == day, Usage.used > 0)  # type: ignore[arg-type]
        .values(used=Usage.used - 1)
    )
    _release_in_flight(session, user_id)
    return True


def used_on(session: Session, user_id: str, day: date) -> int:
    row = session.exec(
        select(func.coalesce(func.max(Usage.used), 0)).where(
            Usage.user_id == user_id, Usage.day == day
        )
    ).one()
    return int(row)
