"""The status message under a request: "queued — you are #N, about …", edited as the position
changes (at most once every few seconds per chat), deleted when the result goes out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Bot
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackContext

from bots.core import Core, progress_texts
from bots.telegram.memory import Expiring

log = logging.getLogger("stylebot.telegram.status")


@dataclass
class Status:
    chat_id: int
    message_id: int
    locale: str
    text: str
    since: float


class StatusBoard:
    def __init__(
        self,
        core: Core,
        bot: Bot,
        min_edit_s: float = 5.0,
        max_age_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core, self.bot, self.clock = core, bot, clock
        self.min_edit_s, self.max_age_s = min_edit_s, max_age_s
        self._jobs: dict[str, Status] = {}
        self._finished: Expiring[str, bool] = Expiring(ttl_s=600.0)  # done before tracked
        self._last_edit: Expiring[int, float] = Expiring(ttl_s=max(60.0, min_edit_s * 2))

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    async def track(
        self, job_id: str, chat_id: int, message_id: int, locale: str, text: str
    ) -> None:
        status = Status(chat_id, message_id, locale, text, self.clock())
        if self._finished.pop(job_id):  # the result beat its own status message
            await self._delete(status)
            return
        self._jobs[job_id] = status

    async def finish(self, job_id: str | None) -> None:
        """The reply for `job_id` went out, or it was cancelled: remove its status message."""
        if job_id is None:
            return
        status = self._jobs.pop(job_id, None)
        if status is None:
            self._finished.put(job_id, True)
            return
        await self._delete(status)

    async def refresh(self, _context: CallbackContext | None = None) -> None:
        """One pass: edit each status whose text changed, where its chat may be edited again."""
        now = self.clock()
        for job_id in [j for j, s in self._jobs.items() if now - s.since > self.max_age_s]:
            self._jobs.pop(job_id, None)  # delivered elsewhere, or long forgotten
        due = [(j, s) for j, s in self._jobs.items() if self._may_edit(s.chat_id)]
        if not due:
            return
        texts = await asyncio.to_thread(self._texts, due)
        edits = []
        for (job_id, status), text in zip(due, texts, strict=True):
            changed = text and text != status.text and job_id in self._jobs
            if changed and text and self._may_edit(status.chat_id):
                self._last_edit.put(status.chat_id, self.clock())
                edits.append(self._edit(job_id, status, text))
        await asyncio.gather(*edits)  # the rate limiter paces them; one slow chat holds none

    def _texts(self, due: list[tuple[str, Status]]) -> list[str | None]:
        return progress_texts(self.core, [(job_id, s.locale) for job_id, s in due])

    def _may_edit(self, chat_id: int) -> bool:
        last = self._last_edit.get(chat_id)
        return last is None or self.clock() - last >= self.min_edit_s

    async def _edit(self, job_id: str, status: Status, text: str) -> None:
        try:
            await self.bot.edit_message_text(
                text, chat_id=status.chat_id, message_id=status.message_id
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                self._jobs.pop(job_id, None)  # the message is gone; stop editing it
            return
        except TelegramError as exc:
            log.info("status_edit_failed job=%s error=%s", job_id, type(exc).__name__)
            return
        status.text = text

    async def _delete(self, status: Status) -> None:
        try:
            await self.bot.delete_message(chat_id=status.chat_id, message_id=status.message_id)
        except TelegramError as exc:  # already gone, or too old to delete: nothing to undo
            log.info("status_delete_failed chat=%s error=%s", status.chat_id, type(exc).__name__)
