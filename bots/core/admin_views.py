"""What /capacity, /stats and /whois show: figures read from SQL, sentences from the catalog."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bots.core.appeals import safety_counts
from bots.core.messages import duration, t
from bots.core.requests import Reply
from bots.core.service import Core
from bots.core.shop import DISCORD, RefundResult
from quota import next_reset, quota_day
from quota.admission import fair_sort_key
from quota.capacity import count_status, jobs_ahead, measure
from quota.controls import capacity_mode, free_limit_now
from quota.payments import PURCHASE, TAKEN_BACK, revenue
from quota.stats import (
    jobs_today_by_tier,
    queued_by_tier,
    rate_last_5_min,
    rejections_since,
    user_done_count,
)
from storage.models import JobStatus, Payment, User


def _per_tier(counts: dict[str, int]) -> str:
    return ", ".join(f"{tier} {n}" for tier, n in counts.items())


def capacity_view(core: Core, s: Session, loc: str) -> Reply:
    rt, now = core.rt, core.rt.clock()
    load = measure(s, now, rt.settings.worker_heartbeat_s, rt.settings.assumed_seconds_per_image)
    waits = {}
    for name, tier in rt.tiers.items():
        wait = load.wait_for(jobs_ahead(s, fair_sort_key(s, tier, now, load, rt.tiers)))
        waits[f"wait_{name}"] = t("wait_unknown", loc) if wait is None else duration(wait, loc)
    free_limit, _ = free_limit_now(s, rt.tiers["free"], rt.settings.surge_min_free_limit)
    text = t(
        "capacity_status", loc, mode=capacity_mode(s), free_limit=free_limit, queued=load.queued,
        running=load.running, workers=load.workers, rate=round(load.images_per_s, 2), **waits,
    )  # fmt: skip
    return Reply(text)


def stats_view(core: Core, s: Session, loc: str) -> Reply:
    rt, now = core.rt, core.rt.clock()
    day = quota_day(now, rt.settings.zone)
    admitted = jobs_today_by_tier(s, day)
    day_start = next_reset(now, rt.settings.zone) - timedelta(days=1)
    rejected = rejections_since(s, day_start)
    requests = {tier: admitted[tier] + rejected.get(tier, 0) for tier in admitted}
    failed = jobs_today_by_tier(s, day, JobStatus.FAILED)
    text = t(
        "stats",
        loc,
        rate=round(rate_last_5_min(s, now), 2),
        running=count_status(s, JobStatus.RUNNING),
        queued=_per_tier(queued_by_tier(s)),
        requests=_per_tier(requests),
        rejected=_per_tier(rejected),
        failed=_per_tier(failed),
    )
    sales = _sales(s, day_start, loc)
    safety = t("stats_safety", loc, **safety_counts(s, day_start))
    return Reply(" ".join([text, sales, safety]))


def _sales(s: Session, day_start: datetime, loc: str) -> str:
    """Today's sales by product: purchases, and what they brought in less refunds."""
    sold = [r for r in revenue(s, day_start, day_start + timedelta(days=1)) if r.count]
    if not sold:
        return t("stats_no_sales", loc)
    items = [
        t("stats_sale_discord", loc, product=r.product, count=r.count)
        if r.currency == DISCORD
        else t("stats_sale", loc, product=r.product, count=r.count, amount=r.amount,
               currency=r.currency)
        for r in sold
    ]  # fmt: skip
    return t("stats_revenue", loc, sales="; ".join(items))


def whois_view(core: Core, s: Session, user: User, loc: str) -> Reply:
    a = core.allowance_in(s, user.id, core.rt.clock())
    text = t(
        "whois", loc, user=user.id, username=user.username or "-", tier=user.tier,
        banned=t("is_banned" if user.banned else "not_banned", loc), used=a.used, limit=a.limit,
        credits=a.credits, in_flight=user.in_flight, done=user_done_count(s, user.id),
    )  # fmt: skip
    notes = _payments(s, user.id, loc)
    if user.tier_until is not None:
        until = core.shop.when(user.tier_until, loc)
        base = user.base_tier or "free"
        notes.insert(0, t("whois_pass", loc, tier=user.tier, until=until, base=base))
    return Reply(" ".join([text, *notes]))


def _payments(s: Session, user_id: str, loc: str, last: int = 5) -> list[str]:
    """The person's last purchases with their charge ids: what an admin's /refund takes."""
    bought = s.exec(
        select(Payment)
        .where(Payment.user_id == user_id, Payment.event == PURCHASE)
        .order_by(col(Payment.id).desc())
        .limit(last)
    ).all()
    if not bought:
        return []
    taken = set(
        s.exec(
            select(Payment.charge_id).where(
                Payment.user_id == user_id, col(Payment.event).in_(TAKEN_BACK)
            )
        ).all()
    )
    items = [
        t(
            "whois_payment_refunded" if p.charge_id in taken else "whois_payment",
            loc,
            product=p.product,
            charge=p.charge_id,
        )
        for p in bought
    ]
    return [t("whois_payments", loc, payments=", ".join(items))]


def refund_notes(core: Core, result: RefundResult, loc: str) -> list[str]:
    """What an admin's refund took back: unused images, or the pass's remaining time."""
    undone = result.undone
    if undone is None:  # the platform's own refund notice took it back first
        return []
    if undone.images:
        return [t("refund_took_images", loc, n=undone.images)]
    if not undone.detail.startswith("pass:"):
        return [t("refund_nothing_taken", loc)]
    if undone.until is None:
        return [t("refund_pass_ended", loc, tier=undone.tier)]
    return [t("refund_pass_until", loc, until=core.shop.when(undone.until, loc))]
