"""Telegram's flood limits on the way out: ~30 msg/s per bot, 20/min per group, ~1/s per chat.

PTB's AIORateLimiter keeps the per-group limit (20 a minute) and retries a 429 after its
retry_after; the bot-wide and per-private-chat paces are this module's `Pacer`, which lets
requests out one at a time and measures both paces at that moment, just before the request is
sent. Two flaws of the plain AIORateLimiter it avoids:

- its bot-wide limiter is a leaky bucket holding 30: after a quiet spell 30 go at once, then
  30 a second, so up to ~60 can leave within one second. Here one goes every 1/30 s, never more.
- a per-chat limiter taken before that bot-wide wait spaces a chat's messages as they enter,
  not as they leave: two entering a second apart can leave a bot-wide wait of seconds together.
  Here a chat's next message is let out only a full interval after its last one was.

Messages and edits into a private chat are paced per chat (`PACED_PREFIXES`); deleting a
message is not, though, like every request that names a chat, it takes its turn in the bot-wide
pace (as in AIORateLimiter). Requests that name no chat (getUpdates, getFile, answering a
callback query) are not paced at all.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from telegram import constants
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

from storage import metrics

PACED_PREFIXES = ("send", "edit", "copy", "forward")
RETRY_SLACK_S = 0.1  # after a 429's retry_after, as AIORateLimiter waits
_EARLY_S = 1e-6  # a timer may fire this much before its time (clock resolution)

Result = bool | dict[str, Any] | list[dict[str, Any]]


@dataclass(eq=False)
class _Turn:
    chat: int | None
    future: asyncio.Future[None] = field(repr=False)


class Pacer:
    """Lets requests out one at a time, first come first served: one every 1/rate s in all
    (never a burst) and one every 1/per_chat_rate s into one chat, both counted from when the
    last one resumed, i.e. was sent. A request whose chat must still wait holds up no one behind
    it, and keeps its place. `pause` stops everything for a while (a 429)."""

    def __init__(self, rate: float, per_chat_rate: float) -> None:
        self.interval = 1 / rate if rate > 0 else 0.0
        self.chat_interval = 1 / per_chat_rate if per_chat_rate > 0 else 0.0
        self._queue: dict[_Turn, None] = {}  # waiting, in order (a dict: removal in O(1))
        self._opening: _Turn | None = None  # let out, not yet running: no one else goes meanwhile
        self._last_out = -math.inf
        self._chat_out: dict[int, float] = {}  # when each chat's last request was sent
        self._prune_above = 1024
        self._paused_until = -math.inf
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._queue)

    async def turn(self, chat: int | None = None, first: bool = False) -> None:
        """Waits until this request may be sent; `chat`: pace it per chat too; `first`: ahead
        of everyone waiting (a retry)."""
        loop = asyncio.get_running_loop()
        turn = _Turn(chat, loop.create_future())
        if first:
            self._queue = {turn: None, **self._queue}
        else:
            self._queue[turn] = None
        self._dispatch()
        try:
            await turn.future
        except asyncio.CancelledError:
            self._queue.pop(turn, None)
            if self._opening is turn:
                self._opening = None
            self._dispatch()
            raise
        now = loop.time()
        self._opening = None
        self._last_out = now  # both paces count from here: it is being sent
        if chat is not None:
            self._chat_out[chat] = now
            if len(self._chat_out) > self._prune_above:
                self._prune(now)
        self._dispatch()

    def pause(self, seconds: float) -> None:
        """Lets nothing out for `seconds` from now (Telegram answered 429)."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)
        self._dispatch()

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._opening is not None or not self._queue:
            return  # the one let out calls again once it runs; so does the next to arrive
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(self._last_out + self.interval, self._paused_until)
        if at <= now + _EARLY_S:
            turn, at = self._next_ready(now)
            if turn is not None:
                del self._queue[turn]
                self._opening = turn
                turn.future.set_result(None)
                return
        if at < math.inf:
            self._timer = loop.call_at(at, self._dispatch)

    def _next_ready(self, now: float) -> tuple[_Turn | None, float]:
        """The first waiting turn that may go now, or when the earliest chat may take one."""
        earliest, blocked = math.inf, set()
        for turn in self._queue:
            if turn.future.done():  # cancelled; its task takes it out
                continue
            if turn.chat is None:
                return turn, now
            if turn.chat in blocked:
                continue  # an earlier one into this chat goes first
            ready = self._chat_out.get(turn.chat, -math.inf) + self.chat_interval
            if ready <= now + _EARLY_S:
                return turn, now
            blocked.add(turn.chat)
            earliest = min(earliest, ready)
        return None, earliest

    def _prune(self, now: float) -> None:
        self._chat_out = {
            chat: out for chat, out in self._chat_out.items() if out + self.chat_interval > now
        }
        self._prune_above = max(1024, 2 * len(self._chat_out))


def retry_after_s(exc: RetryAfter) -> float:
    after = exc.retry_after  # a timedelta with PTB_TIMEDELTA set (bots.telegram.app sets it)
    return after.total_seconds() if isinstance(after, timedelta) else float(after)


def counting_429s(
    callback: Callable[..., Coroutine[Any, Any, Result]],
) -> Callable[..., Coroutine[Any, Any, Result]]:
    """The request, counting each 429 (stylebot_platform_429_total) on its way to the retry."""

    async def counted(*args: Any, **kwargs: Any) -> Result:
        try:
            return await callback(*args, **kwargs)
        except RetryAfter:
            metrics.rate_limited("telegram")
            raise

    return counted


class ChatRateLimiter(AIORateLimiter):
    """AIORateLimiter (per-group limit, 429 retries) with `Pacer` as its bot-wide limit and a
    pace per private chat."""

    def __init__(
        self,
        per_chat_rate: float = 1.0,
        max_retries: int = 5,
        overall_rate: float = constants.FloodLimit.MESSAGES_PER_SECOND,
        group_max_rate: float = constants.FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
        group_time_period: float = 60,
    ) -> None:
        # The parent's own bot-wide limiter is off (overall_max_rate=0): the pacer is that limit.
        super().__init__(
            overall_max_rate=0,
            group_max_rate=group_max_rate,
            group_time_period=group_time_period,
            max_retries=max_retries,
        )
        self.per_chat_rate = per_chat_rate
        self.overall_rate = overall_rate
        self.pacer = Pacer(overall_rate, per_chat_rate)

    def _chat_limiter(self, endpoint: str, data: dict[str, Any]) -> int | None:
        """The private chat whose per-chat pace this request keeps, if any."""
        if self.per_chat_rate <= 0 or not endpoint.startswith(PACED_PREFIXES):
            return None
        try:
            chat_id = int(data.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if chat_id <= 0:  # groups and channels: the parent's per-group limiter applies
            return None
        return chat_id

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        callback = counting_429s(callback)
        if data.get("chat_id") is None or data.get("allow_paid_broadcast"):
            # no chat: not limited; paid broadcasts: the parent's own limiter (1000/s)
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        chat = self._chat_limiter(endpoint, data)
        tries = 0

        async def paced(*call_args: Any, **call_kwargs: Any) -> Result:
            # Called by the parent after the group limiter and any 429 pause, once a try.
            nonlocal tries
            await self.pacer.turn(chat, first=tries > 0)
            tries += 1
            try:
                return await callback(*call_args, **call_kwargs)
            except RetryAfter as exc:
                self.pacer.pause(retry_after_s(exc) + RETRY_SLACK_S)
                raise  # the parent waits and tries again, up to max_retries

        return await super().process_request(paced, args, kwargs, endpoint, data, rate_limit_args)
