"""The people and their Telegram in a child process of their own: the Bot API emulator and the
driver of bench.load_drive, so that the bot's process holds only the bot (as in production,
where Telegram is elsewhere) and its loop lag and CPU are its own. Both processes stamp with
time.monotonic(), one clock for the whole machine on Linux.

The parent sends commands over a pipe: run (send the plan; answers when the last send is out),
unanswered (how many requests have no reply yet), finish (stop; answers with the log).
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass
from typing import Any

from bench.host import BenchError
from bench.load_people import Person, Send

START_TIMEOUT_S = 120.0  # uploading every photo to the emulator takes a while


@dataclass(frozen=True)
class SeenCall:
    """A call the emulator recorded, without its file parts or result."""

    method: str
    params: dict[str, Any]
    status: int
    sent_id: int | None  # the message id a send created


def seen(call: Any) -> SeenCall:
    """An emulator Call as a SeenCall."""
    result = call.result
    sent = result.get("message_id") if isinstance(result, dict) else None
    return SeenCall(call.method, call.params, call.status, sent)


@dataclass(frozen=True)
class TelegramLog:
    calls: list[tuple[float, SeenCall]]  # (monotonic arrival time, call)
    handed: list[float]  # when getUpdates first handed out each update, sorted
    requests: list[Any]  # bench.load_drive.Request
    redelivered: int
    started: float
    finished: float
    behind_s: float
    cpu_s: float  # this process's CPU time from the start of the run to its end


class People:
    """Start with `start()` (the emulator's URL), then `run()`, `unanswered()`, `finish()`."""

    def __init__(self, folks: list[Person], sends: list[Send]) -> None:
        ctx = multiprocessing.get_context("spawn")  # no threads or connections inherited
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_serve, args=(child, folks, sends), name="people", daemon=True
        )

    def _ask(self, command: str | None, timeout_s: float) -> Any:
        if command is not None:
            self.conn.send(command)
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll(1.0):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                what = command or "start"
                raise BenchError(f"the people's process did not answer {what!r} (exit code"
                                 f" {self.proc.exitcode})")  # fmt: skip
        answer = self.conn.recv()
        if isinstance(answer, tuple) and answer and answer[0] == "error":
            raise BenchError(f"the people's process failed:\n{answer[1]}")
        return answer

    def start(self) -> str:
        self.proc.start()
        return str(self._ask(None, START_TIMEOUT_S))

    def run(self, seconds: float) -> None:
        self._ask("run", seconds + 60)

    def unanswered(self) -> int:
        return int(self._ask("unanswered", 30))

    def finish(self) -> TelegramLog:
        log: TelegramLog = self._ask("finish", 60)
        self.proc.join(30)
        return log

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)


def _serve(conn: Any, folks: list[Person], sends: list[Send]) -> None:
    try:
        _commands(conn, folks, sends)
    except Exception:
        conn.send(("error", traceback.format_exc()))


def _commands(conn: Any, folks: list[Person], sends: list[Send]) -> None:
    from bench.load_count import replies
    from bench.load_drive import Driver, emulator_thread

    with emulator_thread() as emu:
        driver = Driver(emu, folks, sends)
        driver.prepare()
        conn.send(emu.url)
        cpu = 0.0
        while (command := conn.recv()) != "finish":
            if command == "run":
                cpu = time.process_time()
                driver.run()
                conn.send(None)
            elif command == "unanswered":
                answered = set(replies([(at, seen(c)) for at, c in emu.snapshot()]))
                conn.send(sum((r.chat_id, r.message_id) not in answered for r in driver.requests))
        calls = [(at, seen(c)) for at, c in emu.snapshot()]
        log = TelegramLog(
            calls=calls,
            handed=sorted(emu.handed.values()),
            requests=driver.requests,
            redelivered=driver.redelivered,
            started=driver.started,
            finished=driver.finished,
            behind_s=driver.behind_s,
            cpu_s=time.process_time() - cpu,
        )
    conn.send(log)
