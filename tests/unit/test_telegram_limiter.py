"""ChatRateLimiter's paces, measured when a fake Bot API call is made: bot-wide, per private chat,
per group, and the retry after a 429. Time is scaled: 300/s bot-wide, 10/s per chat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from telegram.error import RetryAfter

from bots.telegram.limiter import ChatRateLimiter, Pacer

pytestmark = pytest.mark.unit

RATE, PER_CHAT = 300.0, 10.0
CLOCK_SLACK_S = 0.002  # a timer may fire this much early or be read this much late


class FakeBot:
    """Records when each call reaches the 'network': (time, endpoint, chat_id)."""

    def __init__(self, limiter: ChatRateLimiter) -> None:
        self.limiter = limiter
        self.sent: list[tuple[float, str, Any]] = []
        self.fail_next: dict[tuple[str, Any], list[BaseException]] = {}

    def call(self, endpoint: str, **data: Any) -> Coroutine[Any, Any, Any]:
        async def callback() -> dict[str, Any]:
            self.sent.append((asyncio.get_running_loop().time(), endpoint, data.get("chat_id")))
            failures = self.fail_next.get((endpoint, data.get("chat_id")))
            if failures:
                raise failures.pop(0)
            return {"ok": True}

        return self.limiter.process_request(
            callback=callback, args=(), kwargs={}, endpoint=endpoint, data=data,
            rate_limit_args=None,
        )  # fmt: skip

    def times(self, chat: Any = None) -> list[float]:
        return [at for at, _, c in self.sent if chat is None or c == chat]


def run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(make(), timeout=20))


def most_in_window(times: list[float], window_s: float) -> int:
    """The most of `times` within any window (t - window_s, t], as bench.load counts."""
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def limiter(**kwargs: Any) -> ChatRateLimiter:
    return ChatRateLimiter(**{"per_chat_rate": PER_CHAT, "overall_rate": RATE, **kwargs})


def test_production_defaults() -> None:
    default = ChatRateLimiter()
    assert (default.overall_rate, default.per_chat_rate) == (30, 1.0)
    assert default.pacer.interval == pytest.approx(1 / 30)
    assert default.pacer.chat_interval == pytest.approx(1.0)


def test_a_burst_to_many_chats_goes_out_at_the_bot_wide_rate_never_all_at_once() -> None:
    bot = FakeBot(limiter())

    async def main() -> None:
        await asyncio.sleep(0.05)  # a quiet spell: a leaky bucket would now be full
        await asyncio.gather(*(bot.call("sendMessage", chat_id=1000 + i) for i in range(100)))

    run(main)
    times = bot.times()
    assert len(times) == 100
    # what 30 in a second is at 300/s: at most 30 (31 with the clock's slack) in any 1/10 s
    assert most_in_window(times, 30 / RATE) <= 31
    gaps = [b - a for a, b in pairwise(sorted(times))]
    assert min(gaps) >= 1 / RATE - CLOCK_SLACK_S
    assert times[-1] - times[0] == pytest.approx(99 / RATE, abs=0.25)  # and no slower


def test_production_rate_holds_30_in_any_second() -> None:
    bot = FakeBot(ChatRateLimiter(per_chat_rate=1.0))

    async def main() -> None:
        await asyncio.gather(*(bot.call("sendMessage", chat_id=1000 + i) for i in range(36)))

    run(main)
    assert most_in_window(bot.times(), 1.0) <= 31  # AIORateLimiter alone: all 36
    assert most_in_window(bot.times(), 0.5) <= 16


def test_one_chat_is_paced_when_sent_even_behind_a_congested_bot_wide_queue() -> None:
    bot = FakeBot(limiter())

    async def main() -> None:
        crowd = [asyncio.create_task(bot.call("sendMessage", chat_id=1000 + i)) for i in range(60)]
        await asyncio.sleep(0)
        first = asyncio.create_task(bot.call("sendMessage", chat_id=7))
        await asyncio.sleep(1 / PER_CHAT)  # the second enters a full interval after the first
        second = asyncio.create_task(bot.call("editMessageText", chat_id=7, message_id=1))
        await asyncio.gather(*crowd, first, second)

    run(main)
    mine = bot.times(7)
    assert len(mine) == 2
    assert bot.times()[-1] - bot.times()[0] >= 60 / RATE - CLOCK_SLACK_S  # it was congested
    assert mine[0] - bot.times()[0] >= 50 / RATE  # the first waited behind the crowd ...
    assert mine[1] - mine[0] >= 1 / PER_CHAT - CLOCK_SLACK_S  # ... the second did not catch up


def test_a_waiting_chat_holds_up_no_one_and_keeps_its_order() -> None:
    bot = FakeBot(limiter())

    async def main() -> None:
        await asyncio.gather(
            *(bot.call("sendMessage", chat_id=7, text=str(i)) for i in range(3)),
            *(bot.call("sendMessage", chat_id=1000 + i) for i in range(20)),
        )

    run(main)
    mine = bot.times(7)
    assert [b - a >= 1 / PER_CHAT - CLOCK_SLACK_S for a, b in pairwise(mine)] == [True, True]
    others = [at for at, _, chat in bot.sent if chat != 7]
    assert max(others) < mine[1]  # the other chats went while chat 7 waited its turn


def test_groups_are_not_paced_per_second_but_per_minute() -> None:
    bot = FakeBot(limiter(group_max_rate=5, group_time_period=60))

    async def main() -> None:
        await asyncio.gather(*(bot.call("sendMessage", chat_id=-100) for _ in range(5)))
        sixth = asyncio.create_task(bot.call("sendMessage", chat_id=-100))
        await asyncio.sleep(0.3)
        assert not sixth.done()  # the sixth in a minute waits for the group's limit
        sixth.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sixth

    run(main)
    group = bot.times(-100)
    assert len(group) == 5
    assert group[-1] - group[0] < 4 / PER_CHAT  # not one per 1/10 s: the bot-wide pace only
    assert min(b - a for a, b in pairwise(group)) >= 1 / RATE - CLOCK_SLACK_S


def test_deleting_and_answering_callbacks_are_not_paced_per_chat() -> None:
    bot = FakeBot(limiter())

    async def main() -> None:
        await bot.call("sendMessage", chat_id=7)
        await bot.call("deleteMessage", chat_id=7, message_id=1)
        await bot.call("answerCallbackQuery", callback_query_id="q")

    run(main)
    times = bot.times()
    assert times[2] - times[0] < 1 / PER_CHAT / 2


def test_a_429_is_retried_after_its_retry_after_and_pauses_everyone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    bot = FakeBot(limiter())
    bot.fail_next[("sendMessage", 7)] = [RetryAfter(timedelta(seconds=0.3))]

    async def main() -> None:
        first = asyncio.create_task(bot.call("sendMessage", chat_id=7))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, bot.call("sendMessage", chat_id=8))

    run(main)
    (refused, _, _), (retried, _, _) = [s for s in bot.sent if s[2] == 7]
    assert retried - refused >= 0.4 - CLOCK_SLACK_S  # retry_after + AIORateLimiter's 0.1 s
    assert bot.times(8)[0] - refused >= 0.4 - CLOCK_SLACK_S  # nobody went meanwhile


def test_a_429_after_the_last_retry_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    bot = FakeBot(limiter(max_retries=0))
    bot.fail_next[("sendMessage", 7)] = [RetryAfter(0)]

    async def main() -> None:
        with pytest.raises(RetryAfter):
            await bot.call("sendMessage", chat_id=7)

    run(main)
    assert len(bot.times(7)) == 1


def test_a_cancelled_wait_frees_its_place() -> None:
    async def main() -> None:
        pacer = Pacer(rate=RATE, per_chat_rate=PER_CHAT)
        await pacer.turn(7)
        waiting = asyncio.create_task(pacer.turn(7))  # must wait 1/10 s
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(pacer) == 0
        start = asyncio.get_running_loop().time()
        await pacer.turn(8)  # another chat: only the bot-wide pace, long passed
        assert asyncio.get_running_loop().time() - start < 1 / PER_CHAT / 2

    run(main)


def test_private_chats_only_are_paced_per_chat() -> None:
    paced = limiter()
    assert paced._chat_limiter("sendPhoto", {"chat_id": 5}) == 5
    assert paced._chat_limiter("editMessageText", {"chat_id": "5"}) == 5
    assert paced._chat_limiter("sendMessage", {"chat_id": -100}) is None
    assert paced._chat_limiter("sendMessage", {"chat_id": "@channel"}) is None
    assert paced._chat_limiter("deleteMessage", {"chat_id": 5}) is None
    assert limiter(per_chat_rate=0)._chat_limiter("sendMessage", {"chat_id": 5}) is None
