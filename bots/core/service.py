"""The core: admission, quota reservation and enqueue; quota, styles, help and cancel replies."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bots.core.allowance import Allowance, allowance, allowance_in
from bots.core.breaker import Breaker
from bots.core.later import Later
from bots.core.messages import duration, t
from bots.core.requests import ImageRequest, Reply, Sender
from bots.core.runtime import Runtime
from bots.core.shop import Shop
from bots.core.status_html import page_url
from quota import QuotaDenied, next_reset, quota_day, reserve
from quota.admission import Verdict, assess, current_load, fair_sort_key, record_rejection
from quota.capacity import Load, jobs_before
from quota.controls import user_limit
from quota.lifecycle import cancel, finish_failed
from storage import metrics
from storage.db import transaction
from storage.images import MIN_IMAGE_SIDE, ImageRejected, decode_image
from storage.jobs import earlier_result, ensure_user, job_by_key, latest_queued, mark_delivered
from storage.models import Job, User
from tasks.buckets import bucket_for

log = logging.getLogger("stylebot.core")


def _decided(outcome: str, reason: str, reply: Reply) -> Reply:
    """Count an admission decision (quota.admission.record_rejection counts its own)."""
    metrics.admission(outcome, reason)
    return reply


class Core:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.later = Later(self)
        self.shop = Shop(runtime)

    # --- photo requests -------------------------------------------------------------------

    def submit(self, req: ImageRequest) -> Reply:
        """Admit, reserve and enqueue one styled-image request; never charges a refused one."""
        loc = req.sender.locale
        if req.style not in self.rt.styles:
            text = t("unknown_style", loc, style=req.style, styles=self._style_list(loc))
            return _decided("refused", "unknown_style", Reply(text))
        # Refuse what we can before downloading anything: ban, duplicate, capacity, quota. One
        # transaction for all of it; none may stay open across the download.
        with transaction(self.rt.engine) as s:
            gate = self._gate(s, req)
        if isinstance(gate, Reply):
            return gate
        if isinstance(self.rt.enqueue, Breaker) and self.rt.enqueue.open:  # broker failed just now
            return _decided("refused", "broker", Reply(t("busy_error", loc)))
        verdict, now = gate
        data = self._fetch(req)
        if isinstance(data, Reply):
            return data
        image = self._decode(data, loc)
        if isinstance(image, Reply):
            return image
        digest = hashlib.sha256(req.style.encode() + b"\0" + data).hexdigest()
        return self._admit_and_enqueue(req, image, digest, verdict, now)

    def _gate(self, s: Session, req: ImageRequest) -> tuple[Verdict, datetime] | Reply:
        loc = req.sender.locale
        user = ensure_user(s, req.sender.user_id, req.sender.username, loc)
        if user.banned:
            return _decided("refused", "banned", Reply(t("banned", loc)))
        existing = job_by_key(s, req.idempotency_key)
        if existing is not None:
            return _decided(
                "duplicate", "same_request", Reply(t("duplicate", loc), job_id=existing.id)
            )
        max_bytes = int(self.rt.settings.max_upload_mb * 1024 * 1024)
        if req.declared_size is not None and req.declared_size > max_bytes:
            text = t("image_too_big_file", loc, mb=self.rt.settings.max_upload_mb)
            return _decided("refused", "image", Reply(text))
        now = self.rt.clock()
        tier = self.rt.tiers[user.tier]
        verdict = assess(s, tier, now, self.rt.settings, self.rt.tiers, style=req.style)
        left = self.allowance_in(s, user.id, now)
        if not verdict.admitted:
            return self._refuse(s, req, user, verdict, left, now)
        # A read-only look: nothing left today, or the in-flight cap reached (the atomic
        # reservation after decoding still decides; this only spares a pointless download).
        if left.left == 0 or user.in_flight >= tier.in_flight_cap:
            reason = "daily" if left.left == 0 else "in_flight"
            record_rejection(s, user.id, user.tier, f"quota_{reason}", now)
            return self._quota_reply(req.sender, reason, now, left)
        return verdict, now

    def _fetch(self, req: ImageRequest) -> bytes | Reply:
        try:
            return req.fetch()
        except Exception as exc:  # the platform's download failed; nothing was charged
            log.warning("fetch_failed user=%s error=%s", req.sender.user_id, type(exc).__name__)
            return _decided("refused", "fetch", Reply(t("image_unreadable", req.sender.locale)))

    def _decode(self, data: bytes, loc: str) -> Image.Image | Reply:
        settings = self.rt.settings
        try:
            return decode_image(
                data,
                max_bytes=int(settings.max_upload_mb * 1024 * 1024),
                max_pixels=settings.max_image_pixels,
            )
        except ImageRejected as rejected:
            mp = round(settings.max_image_pixels / 1e6)
            mb = settings.max_upload_mb
            text = t(f"image_{rejected.code}", loc, mb=mb, mp=mp, px=MIN_IMAGE_SIDE)
            return _decided("refused", "image", Reply(text))

    def _earlier_result(self, s: Session, user_id: str, digest: str, now: datetime) -> Job | None:
        """The same photo and style earlier today, with its result still on disk."""
        job = earlier_result(s, user_id, digest, quota_day(now, self.rt.settings.zone))
        if job is None or not job.result_path:
            return None
        return job if self.rt.store.result_path(job.id).exists() else None

    def _refuse(
        self,
        s: Session,
        req: ImageRequest,
        user: User,
        verdict: Verdict,
        a: Allowance,
        now: datetime,
    ) -> Reply:
        sender = req.sender
        loc = sender.locale
        reason = verdict.reason or "busy"
        if a.left == 0 and reason in ("busy", "no_workers"):
            reason = "quota_daily"  # the honest answer is the quota
        elif reason == "busy" and user.in_flight >= self.rt.tiers[user.tier].in_flight_cap:
            reason = "quota_in_flight"  # their image is still being made: say that, not "busy"
        record_rejection(s, user.id, user.tier, reason, now)
        if reason in ("quota_daily", "quota_in_flight"):
            return self._quota_reply(sender, reason.removeprefix("quota_"), now, a)
        if reason == "busy":
            text = t("busy", loc, wait=duration(verdict.retry_after_s or 60, loc))
            return self.later.offer(s, req, user, reason, [text, *self._status_link(loc)], now)
        key = {"closed": "closed", "paused": "paused_free", "no_workers": "no_workers"}[reason]
        if reason == "paused":
            return self.later.offer(s, req, user, reason, [t(key, loc)], now)
        return Reply(t(key, loc))

    def _status_link(self, loc: str) -> list[str]:
        """A pointer to the public status page, when one is published (STYLEBOT_STATUS_URL)."""
        base = self.rt.settings.status_url
        return [t("status_link", loc, url=page_url(base, loc))] if base else []

    def _admit_and_enqueue(
        self, req: ImageRequest, image: Image.Image, digest: str, verdict: Verdict, now: datetime
    ) -> Reply:
        job_id = uuid.uuid4().hex
        # Stored before the transaction that makes the job claimable (and outside it: SQLite's
        # write lock is held from BEGIN); a repeated photo, found only inside, deletes it again.
        self.rt.store.save_input(job_id, image)  # downsized, EXIF-free PNG
        try:
            with transaction(self.rt.engine) as s:
                admitted = self._admit(s, req, job_id, digest, image.size, verdict.load, now)
        except QuotaDenied as denied:
            self.rt.store.delete_input(job_id)
            return self._quota_denied(req.sender, denied.reason, now)
        except IntegrityError:  # the same update raced in twice: one job, one charge
            self.rt.store.delete_input(job_id)
            return _decided("duplicate", "same_request", Reply(t("duplicate", req.sender.locale)))
        if isinstance(admitted, Job):  # answered from the stored result, uncharged
            self.rt.store.delete_input(job_id)
            path = self.rt.store.result_path(admitted.id)
            loc = req.sender.locale
            text = t("duplicate_result", loc)
            reply = Reply(text, image=path, job_id=admitted.id, style=admitted.style, locale=loc)
            return _decided("reused", "same_photo", reply)
        job, position = admitted
        return self._enqueue(job, position, verdict.wait_s, req.sender.locale)

    def _admit(
        self,
        s: Session,
        req: ImageRequest,
        job_id: str,
        digest: str,
        size: tuple[int, int],
        load: Load | None,
        now: datetime,
    ) -> tuple[Job, int] | Job:
        """Reserve quota and insert the job; or the earlier job whose result answers this one."""
        sender = req.sender
        # The user row again, fresh: an admin may have changed the tier since the gate.
        user = s.get(User, sender.user_id) or ensure_user(
            s, sender.user_id, sender.username, sender.locale
        )
        again = self._earlier_result(s, user.id, digest, now)
        if again is not None:
            return again
        day = quota_day(now, self.rt.settings.zone)
        tier = self.rt.tiers[user.tier]
        limit, _ = user_limit(s, user, tier, self.rt.settings.surge_min_free_limit)
        # Before the reservation: a SELECT would autoflush its ledger row before the job row.
        load = load or current_load(s, now, self.rt.settings)
        key = fair_sort_key(s, tier, now, load, self.rt.tiers)
        reserve(
            s,
            user_id=user.id,
            job_id=job_id,
            day=day,
            daily_limit=limit,
            in_flight_cap=tier.in_flight_cap,
        )
        job = Job(
            id=job_id,
            idempotency_key=req.idempotency_key,
            user_id=user.id,
            platform=req.target.platform,
            style=req.style,
            tier=tier.name,
            sort_key=key,
            input_digest=digest,
            bucket=bucket_for(*size),
            quota_day=day,
            locale=sender.locale,
            reply_target=req.target.to_json(),
            source_ref=req.source,
            created_at=now,
            token_at=now,
        )
        s.add(job)
        s.flush()
        return job, jobs_before(s, job) + 1

    def _quota_denied(self, sender: Sender, reason: str, now: datetime) -> Reply:
        """The atomic reservation said no (the gate's look raced with another request)."""
        with transaction(self.rt.engine) as s:
            user = ensure_user(s, sender.user_id, sender.username, sender.locale)
            record_rejection(s, user.id, user.tier, f"quota_{reason}", now)
            a = self.allowance_in(s, user.id, now)
        return self._quota_reply(sender, reason, now, a)

    def _enqueue(self, job: Job, position: int, wait_s: float | None, loc: str) -> Reply:
        try:
            self.rt.enqueue(job.id)
        except Exception as exc:  # broker down: fail fast, refund, say so honestly
            log.error("enqueue_failed job=%s error=%s", job.id, type(exc).__name__)
            with transaction(self.rt.engine) as s:
                finish_failed(s, job, "enqueue")
                mark_delivered(s, job.id)  # this reply is its answer: no "failed" one later
            self.rt.store.delete_input(job.id)
            metrics.job_failed("enqueue")
            return _decided("refused", "broker", Reply(t("busy_error", loc)))
        style = self.rt.styles[job.style].display_name(loc)
        eta = duration(wait_s or 0, loc)
        reply = Reply(t("queued_eta", loc, style=style, position=position, eta=eta), job_id=job.id)
        return _decided("admitted", "queued", reply)

    def accept_later(self, sender: Sender, offer_id: str, fetch: Callable[[str], bytes]) -> Reply:
        """The person took a relax-lane offer; `fetch` downloads the photo from its source."""
        return self.later.accept(sender, offer_id, fetch)

    # --- quota -------------------------------------------------------------------------

    def allowance(self, user_id: str, now: datetime | None = None) -> Allowance:
        return allowance(self.rt, user_id, now)

    def allowance_in(self, s: Session, user_id: str, now: datetime) -> Allowance:
        return allowance_in(self.rt, s, user_id, now)

    def quota_status(self, sender: Sender) -> Reply:
        now, loc = self.rt.clock(), sender.locale
        with transaction(self.rt.engine) as s:
            ensure_user(s, sender.user_id, sender.username, loc)
            later = self.later.quota_notes(s, sender.user_id, loc, now)
            passes = self.shop.quota_notes(sender.user_id, loc, s)
        a = self.allowance(sender.user_id, now)
        left = max(0, a.limit - a.used)
        text = t(
            "quota_status", loc, tier=a.tier, used=a.used, limit=a.limit, left=left,
            reset=self._reset_in(now, loc),
        )  # fmt: skip
        return Reply(" ".join([text, *passes, *self._notes(a, loc), *later]))

    def _notes(self, a: Allowance, loc: str) -> list[str]:
        notes = [t("credits_note", loc, credits=a.credits)] if a.credits else []
        return notes + ([t("surge_note", loc, limit=a.limit)] if a.lowered else [])

    def _reset_in(self, now: datetime, loc: str) -> str:
        return duration((next_reset(now, self.rt.settings.zone) - now).total_seconds(), loc)

    def _quota_reply(self, sender: Sender, reason: str, now: datetime, a: Allowance) -> Reply:
        loc = sender.locale
        if reason == "in_flight":
            return Reply(t("quota_in_flight", loc))
        text = t("quota_daily", loc, limit=a.limit, reset=self._reset_in(now, loc))
        return Reply(" ".join([text, *self._notes(a, loc)]))

    # --- other commands ----------------------------------------------------------------

    def cancel_latest(self, sender: Sender) -> Reply:
        with transaction(self.rt.engine) as s:
            job = latest_queued(s, sender.user_id)
            done = job is not None and cancel(s, job, self.rt.clock())
        if not done or job is None:
            return Reply(t("nothing_to_cancel", sender.locale))
        self.rt.store.delete_input(job.id)
        return Reply(t("cancelled", sender.locale), job_id=job.id)

    def styles_reply(self, locale: str) -> Reply:
        return Reply(t("styles", locale, styles=self._style_list(locale)))

    def help_reply(self, locale: str, platform: str | None = None) -> Reply:
        """/help; with a platform where something is for sale there, it names /buy too."""
        if platform is not None and self.shop.for_platform(platform):
            return Reply(" ".join([t("help", locale), t("help_buy", locale)]))
        return Reply(t("help", locale))

    def _style_list(self, locale: str) -> str:
        return ", ".join(f"/{p.name} ({p.display_name(locale)})" for p in self.rt.styles.values())
