"""The bot under load: the real `bots.telegram.TelegramBot` (python-telegram-bot, the core, the
delivery and maintenance loops) on an event loop thread of its own, as `stylebot telegram` runs
it, plus a probe that measures how late that loop wakes up; and a tally of its log warnings."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bots.core import Runtime
    from bots.telegram import TelegramBot, TelegramOptions
    from storage.settings import Settings

T = TypeVar("T")
PROBE_S = 0.010  # the lag probe sleeps this long, over and over
_IDS = re.compile(r"[0-9a-f]{8,}|\d+")
_TRIGGER = re.compile(r" \(trigger: [^\"]*\)")


class BotThread:
    """`start()` serves the bot on a new loop thread until `stop()`; `lags` holds the probe's
    (monotonic time, seconds late) samples."""

    def __init__(self, settings: Settings, options: TelegramOptions) -> None:
        self.settings, self.options = settings, options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bot-loop", daemon=True)
        self.lags: list[tuple[float, float]] = []
        self.timings = Timings()
        self.runtime: Runtime | None = None
        self.stop_event = asyncio.Event()  # binds to the bot's loop when first awaited there
        self.tasks: list[asyncio.Task[None]] = []  # the bot's serve(), then the probe

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        from bots.core import build_runtime
        from bots.telegram import TelegramBot

        self.runtime = build_runtime(self.settings)  # publishes to Celery, as in production
        self.bot: TelegramBot = TelegramBot(self.settings, self.runtime, self.options)
        serve = asyncio.create_task(self.bot.serve(self.stop_event))
        self.tasks.append(serve)
        while not self.bot.app.running:
            if serve.done():
                serve.result()  # raises what stopped it
            await asyncio.sleep(0.02)
        self.timings.attach(self.bot)
        self.tasks.append(asyncio.create_task(self._probe()))

    async def _probe(self) -> None:
        while not self.stop_event.is_set():
            start = time.monotonic()
            await asyncio.sleep(PROBE_S)
            self.lags.append((start, time.monotonic() - start - PROBE_S))

    def stop(self) -> None:
        """Stop the bot as SIGTERM would (however far `start` got), then the loop."""
        if self.thread.is_alive():
            try:
                self.run(self._stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)
        self.loop.close()
        if self.runtime is not None:
            self.runtime.engine.dispose()

    async def _stop(self) -> None:
        self.stop_event.set()
        await asyncio.gather(*self.tasks)


class Timings:
    """Where a reply's time goes inside the bot: the time in `Core.submit` (admission, SQL, the
    download, the Celery publish) and each Bot API call's wait in the flood-limit rate limiter
    before it is sent. Measured by wrapping those two calls of the running bot; nothing else
    changes."""

    def __init__(self) -> None:
        self.submit: list[float] = []
        self.waits: dict[str, list[float]] = defaultdict(list)  # by Bot API method

    def attach(self, bot: TelegramBot) -> None:
        core = bot.handlers.submitter.core
        submit = core.submit

        def timed_submit(request: Any) -> Any:
            start = time.monotonic()
            try:
                return submit(request)
            finally:
                self.submit.append(time.monotonic() - start)

        limiter = bot.app.bot.rate_limiter
        assert limiter is not None
        process = limiter.process_request

        async def timed_process(callback: Any, endpoint: str, **rest: Any) -> Any:
            entered = time.monotonic()

            async def sending(*args: Any, **kwargs: Any) -> Any:
                self.waits[endpoint].append(time.monotonic() - entered)
                return await callback(*args, **kwargs)

            return await process(callback=sending, endpoint=endpoint, **rest)

        setattr(core, "submit", timed_submit)  # noqa: B010 (an instance attribute, on purpose)
        setattr(limiter, "process_request", timed_process)  # noqa: B010


class LogTally(logging.Handler):
    """Counts warnings and errors by logger and message (its first line, cut short)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage().split("\n", 1)[0]
        except Exception:  # a record whose arguments don't fit its format: count it anyway
            line = str(record.msg)
        # One count per kind of message, not per job, chat or time (APScheduler's job names
        # carry their trigger and next run).
        line = _IDS.sub("#", _TRIGGER.sub("", line))[:120]
        self.counts[f"{record.levelname} {record.name}: {line}"] += 1

    def __enter__(self) -> LogTally:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.getLogger().removeHandler(self)
