"""Reserve at enqueue, commit on success, refund on failure or cancel.

Each step is a conditional single statement, so concurrent requests can never over-grant:
the usage row is incremented only `WHERE used < limit` (an upsert on both SQLite and
PostgreSQL), an extra credit is taken only `WHERE extra_credits > 0`, and the ledger's unique
(job_id, kind) makes commit and refund happen once.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.db import upsert_insert
from storage.models import LedgerEntry, LedgerKind, Usage, User


class QuotaDenied(Exception):
    """Raised inside the admission transaction so that it rolls back whole."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "daily" | "in_flight"


def _take_daily(session: Session, user_id: str, day: date, limit: int) -> bool:
    if limit <= 0:
        return False
    stmt = upsert_insert(session, Usage).values(user_id=user_id, day=day, used=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "day"],
        set_={"used": Usage.used + 1},
        where=col(Usage.used) < limit,
    ).returning(Usage.used)
    return session.execute(stmt).scalar_one_or_none() is not None


def _take_credit(session: Session, user_id: str) -> bool:
    result = session.execute(
        update(User)
        .where(col(User.id) == user_id, col(User.extra_credits) > 0)
        .values(extra_credits=User.extra_credits - 1)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def reserve(
    session: Session,
    *,
    user_id: str,
    job_id: str,
    day: date,
    daily_limit: int,
    in_flight_cap: int | None,
) -> str:
    """Take one image: from today's allowance, else an extra credit. Returns the source used.

    `in_flight_cap` None: a relax-lane job, which does not count as in flight (it may wait for
    hours; the tier's relax cap bounds it instead), so commit and refund get in_flight=False."""
    if _take_daily(session, user_id, day, daily_limit):
        source = "daily"
    elif _take_credit(session, user_id):
        source = "credit"
    else:
        raise QuotaDenied("daily")
    if in_flight_cap is None:
        session.add(
            LedgerEntry(
                job_id=job_id, user_id=user_id, day=day, kind=LedgerKind.RESERVE, source=source
            )
        )
        return source
    bumped = session.execute(
        update(User)
        .where(col(User.id) == user_id, col(User.in_flight) < in_flight_cap)
        .values(in_flight=User.in_flight + 1)
    )
    if bumped.rowcount != 1:  # type: ignore[attr-defined]
        raise QuotaDenied("in_flight")
    session.add(
        LedgerEntry(job_id=job_id, user_id=user_id, day=day, kind=LedgerKind.RESERVE, source=source)
    )
    return source


def _record_once(session: Session, job_id: str, user_id: str, day: date, kind: str) -> bool:
    stmt = upsert_insert(session, LedgerEntry).values(
        job_id=job_id, user_id=user_id, day=day, kind=kind
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=["job_id", "kind"]).returning(LedgerEntry.id)
    return session.execute(stmt).scalar_one_or_none() is not None


def _release_in_flight(session: Session, user_id: str) -> None:
    session.execute(
        update(User)
        .where(col(User.id) == user_id, col(User.in_flight) > 0)
        .values(in_flight=User.in_flight - 1)
    )


def commit(
    session: Session, *, job_id: str, user_id: str, day: date, in_flight: bool = True
) -> bool:
    """The image was made: the reservation stands. False if already settled."""
    if not _record_once(session, job_id, user_id, day, LedgerKind.COMMIT):
        return False
    if in_flight:
        _release_in_flight(session, user_id)
    return True


def refund(
    session: Session, *, job_id: str, user_id: str, day: date, in_flight: bool = True
) -> bool:
    """Give the reserved image back to where it came from. False if already refunded."""
    if not _record_once(session, job_id, user_id, day, LedgerKind.REFUND):
        return False
    source = session.exec(
        select(LedgerEntry.source).where(
            LedgerEntry.job_id == job_id, LedgerEntry.kind == LedgerKind.RESERVE
        )
    ).first()
    if source == "credit":
        session.execute(
            update(User).where(col(User.id) == user_id).values(extra_credits=User.extra_credits + 1)
        )
    else:
        session.execute(
            update(Usage)
            .where(col(Usage.user_id) == user_id, col(Usage.day) == day, col(Usage.used) > 0)
            .values(used=Usage.used - 1)
        )
    if in_flight:
        _release_in_flight(session, user_id)
    return True


def used_on(session: Session, user_id: str, day: date) -> int:
    row = session.exec(
        select(func.coalesce(func.max(Usage.used), 0)).where(
            Usage.user_id == user_id, Usage.day == day
        )
    ).one()
    return int(row)
