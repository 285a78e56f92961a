"""The core: admission, quota reservation and enqueue; quota, styles, help and cancel replies."""

from __future__ import annotations

import logging
import uuid

from PIL import Image
from sqlalchemy.exc import IntegrityError

from bots.core.messages import duration, t
from bots.core.requests import ImageRequest, Reply, Sender
from bots.core.runtime import Runtime
from quota import QuotaDenied, next_reset, quota_day, reserve, used_on
from quota.lifecycle import cancel, finish_failed
from storage.db import transaction
from storage.images import ImageRejected, decode_image
from storage.jobs import ensure_user, job_by_key, latest_queued, queue_position
from storage.models import Job

log = logging.getLogger("stylebot.core")


class Core:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # --- photo requests -------------------------------------------------------------------

    def submit(self, req: ImageRequest) -> Reply:
        """Admit, reserve and enqueue one styled-image request; never charges a refused one."""
        loc = req.sender.locale
        refusal = self._precheck(req)
        if refusal is not None:
            return refusal
        image = self._decode(req)
        if isinstance(image, Reply):
            return image
        job_id = uuid.uuid4().hex
        self.rt.store.save_input(job_id, image)  # downsized, EXIF-free PNG
        try:
            job, position = self._admit(req, job_id)
        except QuotaDenied as denied:
            self.rt.store.delete_input(job_id)
            return self._quota_reply(req.sender, denied.reason)
        except IntegrityError:  # the same update raced in twice: one job, one charge
            self.rt.store.delete_input(job_id)
            return Reply(t("duplicate", loc))
        return self._enqueue(job, position, loc)

    def _precheck(self, req: ImageRequest) -> Reply | None:
        loc = req.sender.locale
        if req.style not in self.rt.styles:
            return Reply(t("unknown_style", loc, style=req.style, styles=self._style_list(loc)))
        with transaction(self.rt.engine) as s:
            user = ensure_user(s, req.sender.user_id, req.sender.username, loc)
            if user.banned:
                return Reply(t("banned", loc))
            existing = job_by_key(s, req.idempotency_key)
        if existing is not None:
            return Reply(t("duplicate", loc), job_id=existing.id)
        max_bytes = int(self.rt.settings.max_upload_mb * 1024 * 1024)
        if req.declared_size is not None and req.declared_size > max_bytes:
            return Reply(t("image_too_big_file", loc, mb=self.rt.settings.max_upload_mb))
        return None

    def _decode(self, req: ImageRequest) -> Image.Image | Reply:
        loc, settings = req.sender.locale, self.rt.settings
        try:
            data = req.fetch()
        except Exception as exc:  # the platform's download failed; nothing was charged
            log.warning("fetch_failed user=%s error=%s", req.sender.user_id, type(exc).__name__)
            return Reply(t("image_unreadable", loc))
        try:
            return decode_image(
                data,
                max_bytes=int(settings.max_upload_mb * 1024 * 1024),
                max_pixels=settings.max_image_pixels,
            )
        except ImageRejected as rejected:
            mp = round(settings.max_image_pixels / 1e6)
            return Reply(t(f"image_{rejected.code}", loc, mb=settings.max_upload_mb, mp=mp))

    def _admit(self, req: ImageRequest, job_id: str) -> tuple[Job, int]:
        now = self.rt.clock()
        day = quota_day(now, self.rt.settings.zone)
        with transaction(self.rt.engine) as s:
            user = ensure_user(s, req.sender.user_id, req.sender.username, req.sender.locale)
            tier = self.rt.tiers[user.tier]
            reserve(
                s,
                user_id=user.id,
                job_id=job_id,
                day=day,
                daily_limit=tier.daily_limit,
                in_flight_cap=tier.in_flight_cap,
            )
            job = Job(
                id=job_id,
                idempotency_key=req.idempotency_key,
                user_id=user.id,
                platform=req.target.platform,
                style=req.style,
                quota_day=day,
                locale=req.sender.locale,
                reply_target=req.target.to_json(),
                created_at=now,
            )
            s.add(job)
            s.flush()
            return job, queue_position(s, job)

    def _enqueue(self, job: Job, position: int, loc: str) -> Reply:
        try:
            self.rt.enqueue(job.id)
        except Exception as exc:  # broker down: fail fast, refund, say so honestly
            log.error("enqueue_failed job=%s error=%s", job.id, type(exc).__name__)
            with transaction(self.rt.engine) as s:
                finish_failed(s, job, "enqueue")
            self.rt.store.delete_input(job.id)
            return Reply(t("busy_error", loc))
        style = self.rt.styles[job.style].display_name(loc)
        return Reply(t("queued", loc, style=style, position=position), job_id=job.id)

    # --- commands ----------------------------------------------------------------------

    def quota_status(self, sender: Sender) -> Reply:
        now = self.rt.clock()
        with transaction(self.rt.engine) as s:
            user = ensure_user(s, sender.user_id, sender.username, sender.locale)
            used = used_on(s, user.id, quota_day(now, self.rt.settings.zone))
        tier = self.rt.tiers[user.tier]
        reset = duration(
            (next_reset(now, self.rt.settings.zone) - now).total_seconds(), sender.locale
        )
        left = max(0, tier.daily_limit - used)
        return Reply(
            t(
                "quota_status",
                sender.locale,
                tier=tier.name,
                used=used,
                limit=tier.daily_limit,
                left=left,
                reset=reset,
            )
        )

    def left_today(self, user_id: str, tier_name: str) -> int:
        with transaction(self.rt.engine) as s:
            used = used_on(s, user_id, quota_day(self.rt.clock(), self.rt.settings.zone))
        return max(0, self.rt.tiers[tier_name].daily_limit - used)

    def cancel_latest(self, sender: Sender) -> Reply:
        with transaction(self.rt.engine) as s:
            job = latest_queued(s, sender.user_id)
            done = job is not None and cancel(s, job)
        if not done or job is None:
            return Reply(t("nothing_to_cancel", sender.locale))
        self.rt.store.delete_input(job.id)
        return Reply(t("cancelled", sender.locale), job_id=job.id)

    def styles_reply(self, locale: str) -> Reply:
        return Reply(t("styles", locale, styles=self._style_list(locale)))

    def help_reply(self, locale: str) -> Reply:
        return Reply(t("help", locale))

    def _style_list(self, locale: str) -> str:
        return ", ".join(f"/{p.name} ({p.display_name(locale)})" for p in self.rt.styles.values())

    def _quota_reply(self, sender: Sender, reason: str) -> Reply:
        if reason == "in_flight":
            return Reply(t("quota_in_flight", sender.locale))
        now = self.rt.clock()
        reset = duration(
            (next_reset(now, self.rt.settings.zone) - now).total_seconds(), sender.locale
        )
        with transaction(self.rt.engine) as s:
            user = ensure_user(s, sender.user_id, sender.username, sender.locale)
        return Reply(
            t("quota_daily", sender.locale, limit=self.rt.tiers[user.tier].daily_limit, reset=reset)
        )
