"""Outages of the services everything stands on, staged on private servers, with the bot side
on the Telegram emulator under a steady trickle of requests: Redis gone for a while, and
PostgreSQL restarted mid-load. People get a polite answer fast, nothing is charged without a
job, the bot's event loop never stalls, and bots and workers resume on their own."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bots.core.messages import t
from storage.migrate import upgrade
from tests.e2e.harness import Stack, photo_bytes, running_stack
from tests.e2e.methods import user
from tests.faults.servers import postgres_server, redis_server

pytestmark = pytest.mark.faults

OUTAGE_S = 20.0  # production outages are longer; the behaviour is the same from the 2nd second
FAST = {"worker_heartbeat_s": 1.0, "token_grace_s": 2.0}


class LoopLag:
    """How late the bot's event loop wakes a 50 ms sleep: a blocked loop shows here."""

    def __init__(self) -> None:
        self.worst, self.running = 0.0, True

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self.running:
            start = loop.time()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, loop.time() - start - 0.05)


def first_reply(stack: Stack, chat: int, limit_s: float = 30.0) -> tuple[float, str]:
    """Seconds until the bot first wrote to `chat`, and what it wrote (a text or a caption)."""
    emu, start = stack.emulator, time.monotonic()

    def found() -> str | None:
        for method in ("sendMessage", "sendPhoto"):
            for call in emu.calls_of(method, chat_id=chat):
                return str(call.params.get("text") or call.params.get("caption"))
        return None

    text = emu.wait_for(found, limit_s, f"a reply in chat {chat}")
    return time.monotonic() - start, str(text)


def styled(stack: Stack, chat: int, limit_s: float = 90.0) -> None:
    emu = stack.emulator
    emu.wait_for(lambda: emu.calls_of("sendPhoto", chat_id=chat), limit_s, f"a result in {chat}")


def served_again(stack: Stack, chat: int, limit_s: float = 90.0) -> None:
    """People keep trying after an outage (a new one every 2 s): someone is queued and styled."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ask(stack, chat)
        if first_reply(stack, chat)[1] != t("busy_error", "en"):
            styled(stack, chat, deadline - time.monotonic())
            return
        chat += 1
        time.sleep(2.0)
    raise AssertionError("nobody was served after the outage")


def ask(stack: Stack, chat: int) -> None:
    stack.emulator.send_photo(chat, user(chat), photo_bytes(chat % 97), caption="ghibli")


def watch_lag(stack: Stack) -> LoopLag:
    lag = LoopLag()
    asyncio.run_coroutine_threadsafe(lag.watch(), stack.loop)
    return lag


def test_redis_gone_for_a_while_then_back_empty(tmp_path: Path) -> None:
    with (
        redis_server(tmp_path) as broker,
        running_stack(tmp_path, broker_url=broker.url, **FAST) as stack,
    ):
        stack.start_worker(tmp_path / "worker.log")
        lag = watch_lag(stack)
        ask(stack, 6001)
        styled(stack, 6001)
        broker.stop()
        answers, chat, until = [], 6100, time.monotonic() + OUTAGE_S
        while time.monotonic() < until:
            ask(stack, chat)
            answers.append((chat, *first_reply(stack, chat)))
            chat += 1
            time.sleep(0.3)
        broker.start()  # back, with nothing in it
        served_again(stack, 6900)  # the bot publishes again, the worker reconnected
        lag.running = False
        assert len(answers) >= 10, answers
        assert {text for *_, text in answers} == {t("busy_error", "en")}
        assert max(seconds for _, seconds, _ in answers) < 2.0, answers
        assert all(stack.used(f"telegram:{c}") == 0 for c, *_ in answers)
        assert all(j.status == "failed" for c, *_ in answers for j in stack.jobs(f"telegram:{c}"))
        assert lag.worst < 1.0, lag.worst


def test_postgres_restarted_mid_load(tmp_path: Path) -> None:
    with postgres_server() as db:
        upgrade(db.url)
        with running_stack(tmp_path, database_url=db.url, **FAST) as stack:
            stack.start_worker(tmp_path / "worker.log")
            lag = watch_lag(stack)
            before = list(range(7001, 7005))
            for chat in before:
                ask(stack, chat)
            first_reply(stack, before[-1])
            db.stop()
            during = list(range(7101, 7104))
            for chat in during:
                ask(stack, chat)
            answers = [first_reply(stack, chat) for chat in during]
            time.sleep(2.0)
            db.start()
            for chat in before:
                try:
                    styled(stack, chat)
                except AssertionError:  # say where the job stands, and what the worker said
                    jobs = [(j.status, j.attempts) for j in stack.jobs(f"telegram:{chat}")]
                    log = (tmp_path / "worker.log").read_text()[-3000:]
                    raise AssertionError(f"telegram:{chat} {jobs}\n{log}") from None
            served_again(stack, 7900)
            lag.running = False
            assert {text for _, text in answers} == {t("busy_error", "en")}
            for chat in before:  # each admitted job done once, one result, one charge
                [job] = stack.jobs(f"telegram:{chat}")
                assert job.status == "done" and stack.used(f"telegram:{chat}") == 1
                assert len(stack.emulator.calls_of("sendPhoto", chat_id=chat)) == 1
            assert all(stack.used(f"telegram:{c}") == 0 for c in during)
            assert lag.worst < 1.0, lag.worst
