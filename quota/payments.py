"""Payments in SQL: each event recorded once, packs credited, tier passes started and ended.

The unique (platform, charge_id, event) makes the same payment update, delivered twice or to
two bot processes at once, one credit: only the transaction whose insert wins grants anything.
A pass changes the user row under a row lock (SQLite's write lock does the same), so two
purchases landing together both extend it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from quota.controls import audit
from quota.tiers import TIER_NAMES
from storage.db import upsert_insert
from storage.models import Payment, User

PURCHASE, REFUND, REVOKE, EXPIRY = "purchase", "refund", "revoke", "expiry"
RENEWAL = "renewal"  # a Discord subscription's next period
TAKEN_BACK = (REFUND, REVOKE)
_PASS = re.compile(r"pass:(\w+):\+(\d+)s until (\S+)")
_PACK = re.compile(r"pack:\+(\d+)")


@dataclass(frozen=True)
class Charge:
    """One payment event as the platform reported it."""

    platform: str
    charge_id: str
    user_id: str
    product: str
    amount: int = 0
    currency: str = "XTR"


def record_once(s: Session, charge: Charge, event: str, detail: str, now: datetime) -> int | None:
    """Insert the Payment row: its id, or None when (platform, charge_id, event) is there."""
    stmt = upsert_insert(s, Payment).values(
        platform=charge.platform,
        charge_id=charge.charge_id,
        event=event,
        user_id=charge.user_id,
        product=charge.product[:40],
        amount=charge.amount,
        currency=charge.currency[:8],
        detail=detail[:200],
        created_at=now,
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=["platform", "charge_id", "event"])
    found = s.execute(stmt.returning(Payment.id)).scalar_one_or_none()
    return None if found is None else int(found)


def set_detail(s: Session, payment_id: int, detail: str) -> None:
    s.execute(update(Payment).where(col(Payment.id) == payment_id).values(detail=detail[:200]))


def find(
    s: Session, charge_id: str, event: str = PURCHASE, platform: str | None = None
) -> Payment | None:
    query = select(Payment).where(Payment.charge_id == charge_id, Payment.event == event)
    if platform is not None:
        query = query.where(Payment.platform == platform)
    return s.exec(query.order_by(col(Payment.id))).first()


def purchases(s: Session, platform: str) -> dict[str, bool]:
    """Every purchase's charge id on `platform`, and whether it still stands (not refunded or
    revoked): what a catch-up with the platform's own list compares against."""
    rows = s.execute(
        sa_select(col(Payment.charge_id), col(Payment.event)).where(
            col(Payment.platform) == platform,
            col(Payment.event).in_((PURCHASE, *TAKEN_BACK)),
        )
    ).all()
    bought = {charge for charge, event in rows if event == PURCHASE}
    taken = {charge for charge, event in rows if event != PURCHASE}
    return {charge: charge not in taken for charge in bought}


def locked_user(s: Session, user_id: str) -> User:
    """The user row as committed now, locked until the transaction ends."""
    query = select(User).where(User.id == user_id).with_for_update()
    return s.exec(query.execution_options(populate_existing=True)).one()


def credit_pack(s: Session, user_id: str, images: int) -> str:
    s.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(extra_credits=User.extra_credits + images)
    )
    return f"pack:+{images}"


def rank(tier: str) -> int:
    return TIER_NAMES.index(tier) if tier in TIER_NAMES else 0


def start_pass(s: Session, user_id: str, tier: str, length: timedelta, now: datetime) -> str:
    """Start the pass, or add `length` to the running one; a pass never lowers the tier."""
    user = locked_user(s, user_id)
    if user.tier_until is None:
        user.base_tier = user.tier
    user.tier_until = max(now, user.tier_until or now) + length
    if rank(tier) >= rank(user.tier):
        user.tier = tier
    s.add(user)
    seconds = math.ceil(length.total_seconds())
    return f"pass:{tier}:+{seconds}s until {user.tier_until.isoformat()}"


@dataclass(frozen=True)
class GrantedPass:
    """A pass purchase's detail: which tier, how long, and the end it set."""

    tier: str
    seconds: int
    end: datetime

    def extended(self, more: timedelta) -> str:
        seconds = self.seconds + math.ceil(more.total_seconds())
        return f"pass:{self.tier}:+{seconds}s until {(self.end + more).isoformat()}"


def granted_pass(detail: str | None) -> GrantedPass | None:
    found = _PASS.match(detail or "")
    if found is None:
        return None
    return GrantedPass(found.group(1), int(found.group(2)), datetime.fromisoformat(found.group(3)))


@dataclass(frozen=True)
class Undone:
    """What taking back a purchase did."""

    detail: str  # for the payments row
    images: int  # a pack's images taken back
    tier: str  # the person's tier afterwards
    until: datetime | None  # their pass's end afterwards; None: no pass runs


def take_back(s: Session, user_id: str, detail: str | None, now: datetime) -> Undone:
    """Undo what a purchase granted, where it is unused: a pack's unspent images, the part of a
    pass's time not yet lived (time already past, or an expired pass, is not taken back)."""
    user = locked_user(s, user_id)
    pack, granted = _PACK.match(detail or ""), _PASS.match(detail or "")
    if pack:
        taken = min(int(pack.group(1)), max(0, user.extra_credits))
        user.extra_credits -= taken
        s.add(user)
        return Undone(f"pack:-{taken}", taken, user.tier, user.tier_until)
    if not granted or user.tier_until is None:
        return Undone("nothing left to take back", 0, user.tier, user.tier_until)
    end = datetime.fromisoformat(granted.group(3))
    start = end - timedelta(seconds=int(granted.group(2)))
    unused = min(end - max(now, start), user.tier_until - now)
    if unused <= timedelta(0):
        return Undone("nothing left to take back", 0, user.tier, user.tier_until)
    user.tier_until -= unused
    if user.tier_until <= now:
        end_pass(user)
    s.add(user)
    left = user.tier_until.isoformat(timespec="seconds") if user.tier_until else "ended"
    return Undone(
        f"pass:{granted.group(1)}:-{unused.total_seconds():.0f}s, {left}",
        0,
        user.tier,
        user.tier_until,
    )


def end_pass(user: User) -> None:
    user.tier = user.base_tier or "free"
    user.tier_until = user.base_tier = None


def expire_due(s: Session, now: datetime) -> int:
    """End every pass whose time is up, back to the tier before it, each with a payments
    "expiry" row (the charge id of the pass's last purchase) and an audit row by "auto"."""
    ended = 0
    for user in s.exec(select(User).where(col(User.tier_until) <= now)).all():
        before, tier, after = state(user), user.tier, user.base_tier or "free"
        if not _expire_one(s, user.id, now):
            continue  # another bot process ended it first
        ended += 1
        last = _last_pass_purchase(s, user.id)
        if last is not None:
            charge = Charge(last.platform, last.charge_id, user.id, last.product, 0, last.currency)
            record_once(s, charge, EXPIRY, f"pass:{tier}: back to {after}", now)
        audit(s, actor="auto", action="expiry", now=now, target=user.id, before=before, after=after)
    return ended


def _expire_one(s: Session, user_id: str, now: datetime) -> bool:
    """End the pass if it is still due: one bot process wins, the others change nothing."""
    result = s.execute(
        update(User)
        .where(col(User.id) == user_id, col(User.tier_until) <= now)
        .values(tier=func.coalesce(User.base_tier, "free"), tier_until=None, base_tier=None)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _last_pass_purchase(s: Session, user_id: str) -> Payment | None:
    query = select(Payment).where(
        Payment.user_id == user_id,
        Payment.event == PURCHASE,
        col(Payment.detail).startswith("pass:"),
    )
    return s.exec(query.order_by(col(Payment.id).desc())).first()


def state(user: User) -> str:
    """A user's tier, pass and extra images, for an audit row."""
    until = f" until {user.tier_until:%Y-%m-%d %H:%M}" if user.tier_until else ""
    return f"{user.tier}{until}, {user.extra_credits} extra"


@dataclass(frozen=True)
class Revenue:
    product: str
    currency: str
    count: int  # purchases
    amount: int  # purchases less refunds, in the currency's unit


def revenue(s: Session, start: datetime, end: datetime) -> list[Revenue]:
    """Per product and currency, what was bought between start and end, less what was refunded."""
    rows = s.execute(
        sa_select(
            col(Payment.product),
            col(Payment.currency),
            col(Payment.event),
            func.count(),
            func.sum(col(Payment.amount)),
        )
        .where(col(Payment.created_at) >= start, col(Payment.created_at) < end)
        .where(col(Payment.event).in_((PURCHASE, *TAKEN_BACK)))
        .group_by(Payment.product, Payment.currency, Payment.event)
    ).all()
    totals: dict[tuple[str, str], list[int]] = {}
    for product, currency, event, n, amount in rows:
        entry = totals.setdefault((product, currency), [0, 0])
        if event == PURCHASE:
            entry[0] += int(n)
            entry[1] += int(amount or 0)
        else:
            entry[1] -= int(amount or 0)
    return [Revenue(p, c, n, a) for (p, c), (n, a) in sorted(totals.items())]
