"""The status message under a request: "queued — you are #N, about …", edited as the position
changes (at most once every few seconds per chat), deleted when the result goes out.

Which message belongs to which job is kept in SQL (the job's status_ref), so a restarted bot,
or another bot process, keeps editing it and removes it when the result arrives."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from telegram import Bot
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackContext

from bots.core import Core, progress_texts
from bots.core.statuses import Waiting, remember_status, take_status, waiting
from bots.telegram.memory import Expiring
from bots.telegram.translate import PLATFORM

log = logging.getLogger("stylebot.telegram.status")


class StatusBoard:
    def __init__(
        self,
        core: Core,
        bot: Bot,
        min_edit_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core, self.bot, self.clock = core, bot, clock
        self.min_edit_s = min_edit_s
        self._shown: dict[str, str] = {}  # job id -> the text its status message shows
        self._finished: Expiring[str, bool] = Expiring(ttl_s=600.0)  # done before tracked
        self._last_edit: Expiring[int, float] = Expiring(ttl_s=max(60.0, min_edit_s * 2))

    async def track(
        self, job_id: str, chat_id: int, message_id: int, locale: str, text: str
    ) -> None:
        if self._finished.pop(job_id):  # the result beat its own status message
            await self._delete(chat_id, message_id)
            return
        self._shown[job_id] = text
        await asyncio.to_thread(remember_status, self.core, job_id, str(message_id))
        if self._finished.pop(job_id):  # ... or came while we were writing that down
            await self.finish(job_id)

    async def finish(self, job_id: str | None) -> None:
        """The reply for `job_id` went out, or it was cancelled: remove its status message."""
        if job_id is None:
            return
        self._shown.pop(job_id, None)
        taken = await asyncio.to_thread(take_status, self.core, job_id)
        if taken is None:
            self._finished.put(job_id, True)
            return
        target, ref = taken
        await self._delete(int(target.chat_id), int(ref))

    async def refresh(self, _context: CallbackContext | None = None) -> None:
        """One pass: edit each status whose text changed, where its chat may be edited again."""
        due = await asyncio.to_thread(self._due)
        live = {w.job_id for w, _ in due}
        for gone in [j for j in self._shown if j not in live]:
            self._shown.pop(gone, None)
        edits = []
        for w, text in due:
            chat = int(w.target.chat_id)
            if text and text != self._shown.get(w.job_id) and self._may_edit(chat):
                self._last_edit.put(chat, self.clock())
                edits.append(self._edit(w, text))
        await asyncio.gather(*edits)  # the rate limiter paces them; one slow chat holds none

    def _due(self) -> list[tuple[Waiting, str | None]]:
        items = [w for w in waiting(self.core, PLATFORM) if w.status_ref]
        texts = progress_texts(self.core, [(w.job_id, w.locale) for w in items])
        return list(zip(items, texts, strict=True))

    def _may_edit(self, chat_id: int) -> bool:
        last = self._last_edit.get(chat_id)
        return last is None or self.clock() - last >= self.min_edit_s

    async def _edit(self, w: Waiting, text: str) -> None:
        assert w.status_ref is not None
        try:
            await self.bot.edit_message_text(
                text, chat_id=int(w.target.chat_id), message_id=int(w.status_ref)
            )
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                self._shown[w.job_id] = text
            else:  # the message is gone: stop editing it
                await asyncio.to_thread(take_status, self.core, w.job_id)
            return
        except TelegramError as exc:
            log.info("status_edit_failed job=%s error=%s", w.job_id, type(exc).__name__)
            return
        self._shown[w.job_id] = text

    async def _delete(self, chat_id: int, message_id: int) -> None:
        try:
            await self.bot.delete_message(chat_id=chat_id, message_id=message_id)
        except TelegramError as exc:  # already gone, or too old to delete: nothing to undo
            log.info("status_delete_failed chat=%s error=%s", chat_id, type(exc).__name__)
