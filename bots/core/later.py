"""The relax lane: "do it when there's room" instead of "try again later".

A request refused only because of the wait (busy) or because the free tier is paused is offered
the relax lane, when the adapter can fetch the photo again (`ImageRequest.source`) and the
person's tier allows relax jobs. The offer is a row in SQL, so any bot process, a restarted one
too, can take the "yes". Accepting downloads the photo again and admits it like a normal
request (reserved now, charged when made, refunded if it fails, is cancelled or expires), into
the relax lane: no wait promise, and workers take it only when no normal job waits.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from PIL import Image
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bots.core.messages import duration, t
from bots.core.requests import ImageRequest, Reply, Sender
from quota import QuotaDenied, quota_day, reserve
from quota.admission import current_load, sort_key
from quota.controls import user_limit
from quota.lifecycle import finish_failed
from quota.relax import day_pattern, relax_ahead, relax_wait
from storage import metrics
from storage.db import transaction
from storage.jobs import earlier_result, mark_delivered, relax_held
from storage.models import Job, JobStatus, Lane, Offer, User
from tasks.buckets import bucket_for

if TYPE_CHECKING:
    from bots.core.service import Core

log = logging.getLogger("stylebot.core")

LATER_PREFIX = "later:"  # callback data / custom id of the offer's button: later:<offer id>


class Later:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.rt = core.rt

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=self.rt.settings.relax_ttl_hours)

    # --- the offer ------------------------------------------------------------------------

    def offer(
        self,
        s: Session,
        req: ImageRequest,
        user: User,
        reason: str,
        parts: list[str],
        now: datetime,
    ) -> Reply:
        """The refusal, with an offer of the relax lane where one can be kept."""
        loc = req.sender.locale
        cap = self.rt.tiers[user.tier].relax_cap
        if not req.source or cap <= 0 or relax_held(s, user.id) >= cap:
            return Reply(" ".join([*parts]))
        offer = Offer(
            id=uuid.uuid4().hex,
            user_id=user.id,
            style=req.style,
            locale=loc,
            reply_target=req.target.to_json(),
            source_ref=req.source,
            idempotency_key=req.idempotency_key,
            reason=reason,
            created_at=now,
        )
        s.add(offer)
        key = "later_offer_console" if req.target.platform == "console" else "later_offer"
        return Reply(" ".join([*parts, t(key, loc)]), offer_id=offer.id)

    # --- accepting it ---------------------------------------------------------------------

    def accept(self, sender: Sender, offer_id: str, fetch: Callable[[str], bytes]) -> Reply:
        """The person said yes: fetch the photo again and admit it into the relax lane."""
        loc = sender.locale
        now = self.rt.clock()
        with transaction(self.rt.engine) as s:
            checked = self._check(s, sender, offer_id, now)
        if isinstance(checked, Reply):
            return checked
        style, source = checked
        try:
            data = fetch(source)
        except Exception as exc:  # the platform's copy is gone or unreachable; nothing charged
            log.warning("later_fetch_failed user=%s error=%s", sender.user_id, type(exc).__name__)
            return Reply(t("image_unreadable", loc))
        image = self.core._decode(data, loc)
        if isinstance(image, Reply):
            return image
        digest = hashlib.sha256(style.encode() + b"\0" + data).hexdigest()
        return self._admit_and_enqueue(sender, offer_id, image, digest, now)

    def _check(
        self, s: Session, sender: Sender, offer_id: str, now: datetime
    ) -> tuple[str, str] | Reply:
        """Whether this offer can still be taken by this person; (style, source) if so."""
        loc = sender.locale
        offer = s.get(Offer, offer_id) if len(offer_id) <= 32 else None
        if offer is None or offer.user_id != sender.user_id or offer.style not in self.rt.styles:
            return Reply(t("later_gone", loc))
        if offer.job_id is not None:
            return Reply(t("later_taken", loc), job_id=offer.job_id)
        if _aware(offer.created_at, now) + self.offer_ttl < now:
            return Reply(t("later_gone", loc))
        user = s.get(User, sender.user_id)
        if user is None or user.banned:
            return Reply(t("banned", loc))
        refused = self._refusal(s, user, now, loc)
        return refused if refused is not None else (offer.style, offer.source_ref)

    @property
    def offer_ttl(self) -> timedelta:
        return timedelta(minutes=self.rt.settings.offer_ttl_minutes)

    def _refusal(self, s: Session, user: User, now: datetime, loc: str) -> Reply | None:
        """The relax cap reached, or nothing left today: the polite no; None: go ahead."""
        cap = self.rt.tiers[user.tier].relax_cap
        if relax_held(s, user.id) >= cap:
            return Reply(t("later_cap", loc, n=cap))
        left = self.core.allowance_in(s, user.id, now)
        if left.left == 0:
            return self.core._quota_reply(Sender(user.id, user.username, loc), "daily", now, left)
        return None

    def _admit_and_enqueue(
        self, sender: Sender, offer_id: str, image: Image.Image, digest: str, now: datetime
    ) -> Reply:
        job_id = uuid.uuid4().hex
        self.rt.store.save_input(job_id, image)  # downsized, EXIF-free PNG
        try:
            with transaction(self.rt.engine) as s:
                admitted = self._admit(s, sender, offer_id, job_id, digest, image.size, now)
        except QuotaDenied as denied:
            self.rt.store.delete_input(job_id)
            return self.core._quota_denied(sender, denied.reason, now)
        except IntegrityError:  # two presses raced: one job, one charge
            self.rt.store.delete_input(job_id)
            return Reply(t("later_taken", sender.locale))
        if isinstance(admitted, Reply):
            self.rt.store.delete_input(job_id)
            return admitted
        if admitted.id != job_id:  # the same photo and style made earlier today: sent again
            self.rt.store.delete_input(job_id)
            path = self.rt.store.result_path(admitted.id)
            loc = sender.locale
            return Reply(t("duplicate_result", loc), image=path, job_id=admitted.id, locale=loc)
        return self._enqueue(admitted, sender.locale)

    def _admit(
        self,
        s: Session,
        sender: Sender,
        offer_id: str,
        job_id: str,
        digest: str,
        size: tuple[int, int],
        now: datetime,
    ) -> Job | Reply:
        """Take the offer, reserve the quota and insert the relax job, in one transaction."""
        loc = sender.locale
        # The user row locked (PostgreSQL): two presses of two offers can't both pass the cap.
        user = s.exec(select(User).where(User.id == sender.user_id).with_for_update()).one()
        refused = self._refusal(s, user, now, loc)
        if refused is not None:
            return refused
        taken = s.execute(
            update(Offer)
            .where(col(Offer.id) == offer_id, col(Offer.job_id).is_(None))
            .values(job_id=job_id)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return Reply(t("later_taken", loc))
        offer = s.get(Offer, offer_id, populate_existing=True)
        assert offer is not None
        again = earlier_result(s, user.id, digest, quota_day(now, self.rt.settings.zone))
        if again is not None and again.result_path and self.rt.store.result_path(again.id).exists():
            offer.job_id = again.id  # answered by that job: nothing reserved, nothing queued
            s.add(offer)
            return again
        day = quota_day(now, self.rt.settings.zone)
        tier = self.rt.tiers[user.tier]
        limit, _ = user_limit(s, user, tier, self.rt.settings.surge_min_free_limit)
        reserve(s, user_id=user.id, job_id=job_id, day=day, daily_limit=limit, in_flight_cap=None)
        job = Job(
            id=job_id,
            idempotency_key=f"{offer.idempotency_key[:190]}#later",
            user_id=user.id,
            platform=sender.platform,
            style=offer.style,
            tier=tier.name,
            lane=Lane.RELAX,
            sort_key=sort_key(tier, now),  # paid relax jobs first, as in the normal lane
            input_digest=digest,
            bucket=bucket_for(*size),
            quota_day=day,
            locale=loc,
            reply_target=offer.reply_target,
            source_ref=offer.source_ref,
            created_at=now,
            token_at=now,
        )
        s.add(job)
        s.flush()
        return job

    def _enqueue(self, job: Job, loc: str) -> Reply:
        try:
            self.rt.enqueue(job.id)
        except Exception as exc:  # broker down: refund and say so, as for a normal request
            log.error("enqueue_failed job=%s error=%s", job.id, type(exc).__name__)
            with transaction(self.rt.engine) as s:
                finish_failed(s, job, "enqueue")
                mark_delivered(s, job.id)
            self.rt.store.delete_input(job.id)
            metrics.job_failed("enqueue")
            return Reply(t("busy_error", loc))
        log.info("relax_admitted job=%s user=%s", job.id, job.user_id)
        metrics.admission("admitted", "relax")
        style = self.rt.styles[job.style].display_name(loc)
        with transaction(self.rt.engine) as s:
            wait = self.estimate(s, job, self.rt.clock())
        if wait is None:
            text = t("later_queued_unknown", loc, style=style, ttl=duration(self._ttl_s, loc))
        else:
            text = t("later_queued", loc, style=style, eta=duration(max(wait, 60.0), loc))
        return Reply(text, job_id=job.id)

    @property
    def _ttl_s(self) -> float:
        return self.ttl.total_seconds()

    # --- estimates, /quota and expiry --------------------------------------------------------

    def estimate(self, s: Session, job: Job | None, now: datetime) -> float | None:
        """Seconds until this relax job (or a new one) is probably done; None: not foreseeable
        within the relax lane's time limit."""
        load = current_load(s, now, self.rt.settings)
        need = load.queued + relax_ahead(s, job) + 1
        left = self.ttl if job is None else _aware(job.created_at, now) + self.ttl - now
        return relax_wait(day_pattern(s, now), load, now, need, left)

    def quota_notes(self, s: Session, user_id: str, loc: str, now: datetime) -> list[str]:
        """/quota: the relax jobs this person holds, with when the first is probably done."""
        held = relax_held(s, user_id)
        if held == 0:
            return []
        first = s.exec(
            select(Job)
            .where(Job.user_id == user_id, Job.lane == Lane.RELAX, Job.status == JobStatus.QUEUED)
            .order_by(col(Job.created_at))
        ).first()
        wait = self.estimate(s, first, now) if first is not None else 0.0
        if wait is None:
            return [t("later_quota_note_unknown", loc, n=held)]
        return [t("later_quota_note", loc, n=held, eta=duration(max(wait, 60.0), loc))]


def _aware(at: datetime, like: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; compare them as aware ones."""
    return at if at.tzinfo is not None else at.replace(tzinfo=like.tzinfo)
