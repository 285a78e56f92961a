"""Live progress: each waiting request's status message (the deferred answer to its
interaction) is edited with its queue position and ETA as they change.

What to edit is read from SQL (queued and running Discord jobs whose interaction token still
lives), so a restarted bot carries on editing; edits are paced per message and in number."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import discord

from bots.core import Core, ReplyTarget, progress_texts
from bots.core.failures import report
from bots.core.statuses import waiting
from bots.discord.sender import ORIGINAL, DiscordSender, token_refused
from bots.discord.translate import PLATFORM

log = logging.getLogger("stylebot.discord.status")

MAX_PARALLEL_EDITS = 4


class StatusRefresher:
    def __init__(
        self,
        core: Core,
        sender: DiscordSender,
        clock: Callable[[], float],
        min_edit_s: float = 5.0,
    ) -> None:
        self.core, self.sender, self.clock, self.min_edit_s = core, sender, clock, min_edit_s
        self._shown: dict[str, tuple[str, float]] = {}  # job id -> (text, when edited)
        self._slots = asyncio.Semaphore(MAX_PARALLEL_EDITS)

    def _waiting(self) -> list[tuple[str, str, ReplyTarget]]:
        return [
            (w.job_id, w.locale, w.target)
            for w in waiting(self.core, PLATFORM)
            if w.target.handle and self.sender.usable(w.target)
        ]

    def _texts(self) -> list[tuple[str, ReplyTarget, str]]:
        waiting = self._waiting()
        texts = progress_texts(self.core, [(job_id, loc) for job_id, loc, _ in waiting])
        return [(j, target, x) for (j, _, target), x in zip(waiting, texts, strict=True) if x]

    async def refresh(self) -> int:
        """One pass; returns how many status messages were edited."""
        due = await asyncio.to_thread(self._texts)
        live = {job_id for job_id, _, _ in due}
        for gone in [j for j in self._shown if j not in live]:
            del self._shown[gone]
        now = self.clock()
        edits = [
            self._edit(job_id, target, text)
            for job_id, target, text in due
            if self._changed(job_id, text, now)
        ]
        return sum(await asyncio.gather(*edits))

    def shown(self, job_id: str, text: str) -> None:
        """The request's own answer showed `text` just now."""
        self._shown[job_id] = (text, self.clock())

    def _changed(self, job_id: str, text: str, now: float) -> bool:
        shown = self._shown.get(job_id)
        if shown is None:  # answered by an earlier run of the bot: bring it up to date
            return True
        return shown[0] != text and now - shown[1] >= self.min_edit_s

    async def _edit(self, job_id: str, target: ReplyTarget, text: str) -> int:
        assert target.handle is not None
        self._shown[job_id] = (text, self.clock())
        async with self._slots:
            try:
                hook = self.sender.webhook(target.handle)
                await hook.edit_message(ORIGINAL, content=text)
            except discord.HTTPException as exc:  # gone, or the token spent: stop trying
                log.info("status_edit_failed job=%s status=%s", job_id, exc.status)
                if token_refused(exc):
                    self.sender.refuse(target.handle)
                return 0
        return 1

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                report(log, "status_pass_failed", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
