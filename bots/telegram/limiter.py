"""Telegram's flood limits on the way out: ~30 msg/s per bot, 20/min per group, ~1/s per chat.

PTB's AIORateLimiter does the first two and retries a 429 after its retry_after; this adds the
per-private-chat pace for messages and edits (deleting and answering callbacks are not limited).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.ext import AIORateLimiter

from bots.telegram.memory import Expiring

PACED_PREFIXES = ("send", "edit", "copy", "forward")


class ChatRateLimiter(AIORateLimiter):
    def __init__(self, per_chat_rate: float = 1.0, max_retries: int = 5) -> None:
        super().__init__(max_retries=max_retries)
        self.per_chat_rate = per_chat_rate
        self._chats: Expiring[int, AsyncLimiter] = Expiring(ttl_s=600.0, max_items=20_000)

    def _chat_limiter(self, endpoint: str, data: dict[str, Any]) -> AsyncLimiter | None:
        if self.per_chat_rate <= 0 or not endpoint.startswith(PACED_PREFIXES):
            return None
        try:
            chat_id = int(data.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if chat_id <= 0:  # groups and channels: the parent's per-group limiter applies
            return None
        limiter = self._chats.get(chat_id)
        if limiter is None:
            limiter = AsyncLimiter(max_rate=1, time_period=1 / self.per_chat_rate)
            self._chats.put(chat_id, limiter)
        return limiter

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        limiter = self._chat_limiter(endpoint, data)
        async with limiter if limiter is not None else contextlib.nullcontext():
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
