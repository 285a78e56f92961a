"""What `stylebot bench load` puts in and reads from SQL: the people's tiers before the run; the
jobs, the ledger and the usage counters after it (over-granted quota, unfinished jobs)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from bench.load_people import Person

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quota.tiers import Tier

PLATFORM = "telegram"


def seed_users(engine: Engine, folks: Sequence[Person]) -> None:
    """Every person as a user row with their tier, as an admin's /settier would leave it."""
    from storage.db import transaction
    from storage.models import User

    with transaction(engine) as s:
        s.add_all(
            User(id=f"{PLATFORM}:{p.user_id}", username=f"user{p.user_id}", tier=p.tier)
            for p in folks
        )


@dataclass(frozen=True)
class JobCounts:
    by_status: Counter[str]
    undelivered: int  # done or failed, but not (yet) sent
    targets: frozenset[tuple[int, int]]  # (chat id, message id) each job answers

    @property
    def unfinished(self) -> int:
        return self.by_status["queued"] + self.by_status["running"]


def job_counts(engine: Engine) -> JobCounts:
    from sqlmodel import Session, select

    from bots.core import ReplyTarget
    from storage.models import Job

    with Session(engine) as s:
        rows = s.exec(select(Job.status, Job.delivered_at, Job.reply_target)).all()
    targets = set()
    for _, _, target in rows:
        where = ReplyTarget.from_json(target)
        targets.add((int(where.chat_id), int(where.message_id or 0)))
    return JobCounts(
        by_status=Counter(str(status) for status, _, _ in rows),
        undelivered=sum(
            1 for status, delivered, _ in rows if status in ("done", "failed") and not delivered
        ),
        targets=frozenset(targets),
    )


@dataclass(frozen=True)
class QuotaCheck:
    charged: int  # images charged in all (reserved minus refunded)
    over_granted: tuple[str, ...]  # "user day: charged N (counter M) of limit L"


def quota_check(engine: Engine, tiers: Mapping[str, Tier]) -> QuotaCheck:
    """Per user and day: images charged by the ledger (reserve - refund) and the usage counter,
    each against the user's daily limit (the tier's; the bench grants nothing extra)."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from storage.models import LedgerEntry, Usage, User

    with Session(engine) as s:
        ledger = s.exec(
            select(
                col(LedgerEntry.user_id), col(LedgerEntry.day), col(LedgerEntry.kind), func.count()
            )
            .where(col(LedgerEntry.kind).in_(("reserve", "refund")))
            .group_by(col(LedgerEntry.user_id), col(LedgerEntry.day), col(LedgerEntry.kind))
        ).all()
        used = {(u.user_id, u.day): u.used for u in s.exec(select(Usage)).all()}
        users = {u.id: u for u in s.exec(select(User)).all()}
    charged: Counter[tuple[str, date]] = Counter()
    for user_id, day, kind, n in ledger:
        charged[(user_id, day)] += n if kind == "reserve" else -n
    over = []
    for key in sorted(set(charged) | set(used), key=str):
        user = users[key[0]]
        custom = user.daily_limit
        limit = (tiers[user.tier].daily_limit if custom is None else custom) + user.extra_credits
        if max(charged[key], used.get(key, 0)) > limit:
            over.append(
                f"{key[0]} {key[1]}: charged {charged[key]} (counter {used.get(key, 0)})"
                f" of limit {limit}"
            )
    return QuotaCheck(sum(charged.values()), tuple(over))
