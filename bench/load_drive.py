"""The Telegram side of `stylebot bench load`: the Bot API emulator of tests/e2e with a timestamp
on every call it records and on every update it hands out, on an event loop thread of its own
(Telegram is not on the bot's loop in production either); and the driver that injects the
plan's sends at their times, as the people of the plan.

Imports tests.e2e: run from a source checkout (bench.load makes sure it is importable).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from bench.load_people import Person, Send, junk, photo_jpeg
from tests.e2e.emulator import Call, Emulator
from tests.e2e.harness import running_emulator
from tests.e2e.methods import user


class StampedCalls(list[Call]):
    """The emulator's call log, with the monotonic time each call arrived (`at[i]` for call i).
    The emulator appends under its lock, so the two stay in step."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def append(self, call: Call) -> None:
        self.at.append(time.monotonic())
        super().append(call)


class StampedEmulator(Emulator):
    def __init__(self) -> None:
        super().__init__()
        self.log = StampedCalls()
        self.calls = self.log
        self.handed: dict[int, float] = {}  # update id -> when getUpdates first handed it out

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        ready = await super()._get_updates(params)
        now = time.monotonic()
        for update in ready:
            self.handed.setdefault(update["update_id"], now)
        return ready

    def snapshot(self) -> list[tuple[float, Call]]:
        """Every call so far with its arrival time."""
        with self.lock:
            return list(zip(self.log.at, self.log, strict=True))


def emulator_thread() -> AbstractContextManager[StampedEmulator]:
    """A started StampedEmulator on its own event loop thread; stopped afterwards."""
    return running_emulator(StampedEmulator)


@dataclass(frozen=True)
class Request:
    """A message a person sent that asks something of the bot (not a re-delivered update)."""

    chat_id: int
    message_id: int
    user_id: int
    tier: str
    kind: str  # photo, same, pdf, empty, corrupt
    at: float  # monotonic time of its injection


class Driver:
    """Sends the plan through the emulator at the planned times, and remembers what it sent."""

    def __init__(self, emulator: StampedEmulator, folks: list[Person], sends: list[Send]) -> None:
        self.emu, self.sends = emulator, sends
        self.tiers = {p.user_id: p.tier for p in folks}
        self.contents: list[dict[str, Any] | None] = []
        self.messages: list[dict[str, Any] | None] = []
        self.requests: list[Request] = []
        self.redelivered = 0
        self.behind_s = 0.0  # the most an injection ran behind its planned time
        self.started = self.finished = 0.0

    def prepare(self) -> None:
        """Upload every file to the emulator first, so injecting costs only a message."""
        photos: dict[int, list[dict[str, Any]]] = {}
        for send in self.sends:
            self.contents.append(self._content(send, photos))

    def _content(
        self, send: Send, photos: dict[int, list[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        if send.kind == "again":
            return None
        if send.kind in ("photo", "same"):
            if send.seed not in photos:  # the same photo again keeps its file ids, as Telegram
                with self.emu.lock:
                    photos[send.seed] = self.emu.photo_sizes(photo_jpeg(send.seed))
            return {"photo": photos[send.seed], "caption": send.caption}
        data, mime, name = junk(send.kind)
        with self.emu.lock:
            doc = self.emu.register(data, mime_type=mime, file_name=name)
        return {"document": doc, "caption": send.caption}

    def run(self) -> None:
        """Inject every send at its time (monotonic, from now); returns after the last one."""
        self.started = time.monotonic()
        for send, content in zip(self.sends, self.contents, strict=True):
            delay = self.started + send.at_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                self.behind_s = max(self.behind_s, -delay)
            self.messages.append(self._inject(send, content))
        self.finished = time.monotonic()

    def _inject(self, send: Send, content: dict[str, Any] | None) -> dict[str, Any] | None:
        if content is None:  # delivered a second time, as after a webhook retry or a restart
            original = self.messages[send.previous] if send.previous is not None else None
            if original is not None:
                self.emu.inject({"message": original})
                self.redelivered += 1
            return None
        uid = send.user_id
        at = time.monotonic()
        msg = self.emu.user_message(uid, user(uid), **content)
        self.requests.append(
            Request(uid, int(msg["message_id"]), uid, self.tiers[uid], send.kind, at)
        )
        return msg
