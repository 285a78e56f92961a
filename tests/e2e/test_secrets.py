"""After a full run of both bots as an operator runs them (their own processes, PostgreSQL,
Redis, a worker), nothing shaped like a Telegram or Discord bot token is in any log line,
Redis key or value, database column, or stored file name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session

from bots.logs import TOKEN_PATTERN
from storage.migrate import upgrade
from storage.models import WorkerBeat, utcnow
from tests.conftest import PLACEHOLDER_BEAT
from tests.dbutil import fresh_database
from tests.e2e.discord_emulator import TOKEN as DISCORD_TOKEN
from tests.e2e.discord_loop import DiscordLoop
from tests.e2e.emulator import TOKEN as TELEGRAM_TOKEN
from tests.e2e.harness import photo_bytes, running_emulator
from tests.e2e.methods import user
from tests.services import redis_url

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRETS = (TELEGRAM_TOKEN, DISCORD_TOKEN)


def leaks(text_: str) -> list[str]:
    found = [m.group(0) for m in TOKEN_PATTERN.finditer(text_)]
    return found + [s for s in SECRETS if s in text_]


def redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        parts = []
        for key in client.scan_iter():
            kind = client.type(key).decode()
            value = {
                "string": lambda k: client.get(k),
                "list": lambda k: client.lrange(k, 0, -1),
                "hash": lambda k: client.hgetall(k),
                "set": lambda k: client.smembers(k),
                "zset": lambda k: client.zrange(k, 0, -1),
            }.get(kind, lambda k: b"")(key)
            parts.append(f"{key!r} {value!r}")
        return "\n".join(parts)
    finally:
        client.close()


def database_dump(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            rows = [conn.execute(text(f'SELECT * FROM "{t}"')).all() for t in tables]
        return "\n".join(str(row) for table in rows for row in table)
    finally:
        engine.dispose()


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bots.cli", *command],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _pretend_a_worker(url: str) -> None:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            s.add(WorkerBeat(id=PLACEHOLDER_BEAT, last_seen=utcnow() + timedelta(hours=1)))
            s.commit()
    finally:
        engine.dispose()


@pytest.fixture
def discord_emulator() -> Iterator[DiscordLoop]:
    running = DiscordLoop()
    running.thread.start()
    running.run(running.emulator.start())
    try:
        yield running
    finally:
        running.close()


def test_no_token_anywhere_after_a_full_run(tmp_path: Path, discord_emulator: DiscordLoop) -> None:
    broker, dc = redis_url(), discord_emulator.emulator
    with fresh_database("postgres", tmp_path) as db, running_emulator() as tg:
        upgrade(db)
        _pretend_a_worker(db)  # admit the requests before the worker starts
        env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
        env.update(
            STYLEBOT_DATA_DIR=str(tmp_path / "data"),
            STYLEBOT_DATABASE_URL=db,
            STYLEBOT_BROKER_URL=broker,
            STYLEBOT_TELEGRAM_TOKEN=TELEGRAM_TOKEN,
            STYLEBOT_TELEGRAM_API_URL=tg.url,
            STYLEBOT_DISCORD_TOKEN=DISCORD_TOKEN,
            STYLEBOT_DISCORD_API_URL=f"{dc.url}/api/v10",
            PYTHONPATH=str(ROOT),
        )
        procs = [
            start(["telegram"], env, tmp_path / "telegram.log"),
            start(["discord"], env, tmp_path / "discord.log"),
        ]
        try:
            tg.wait_for(lambda: tg.calls_of("getUpdates"), 120, "the Telegram bot polling")
            dc.wait_for(lambda: dc.identifies(), 120, "the Discord bot connected")
            tg.send_photo(91, user(91), photo_bytes(91), caption="ghibli")
            who, guild, channel = dc.user(9_100_001), 9_100_002, 9_100_003
            dc.guild(guild)
            dc.channel(channel, guild)
            photo = dc.attachment(photo_bytes(92))
            option = {"name": "image", "type": 11, "value": photo["id"]}
            asked = dc.slash("arcane", who, channel, options=[option], attachments=[photo])
            tg.wait_for(lambda: tg.calls_of("sendMessage", chat_id=91), 60, "queued on Telegram")
            dc.wait_for(lambda: (dc.original(asked["id"]) or {}).get("content"), 60, "queued")
            waiting = redis_dump(broker)  # the tokens wait in Redis now: look at them
            procs.append(start(["worker"], env, tmp_path / "worker.log"))
            tg.wait_for(lambda: tg.calls_of("sendPhoto", chat_id=91), 90, "a Telegram result")
            dc.wait_for(lambda: dc.followups(asked["id"]), 90, "a Discord result")
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
        logs = "\n".join(p.read_text() for p in tmp_path.glob("*.log"))
        assert "discord_started" in logs and "telegram_started" in logs
        files = "\n".join(str(p) for p in (tmp_path / "data").rglob("*"))
        places = {
            "logs": logs,
            "redis while waiting": waiting,
            "redis after": redis_dump(broker),
            "database": database_dump(db),
            "stored files": files,
        }
    assert "stylebot.stylize" in waiting  # the scan saw the task messages themselves
    assert leaks(f"x{TELEGRAM_TOKEN}y") and leaks(DISCORD_TOKEN)  # the scan would see them
    for where, content in places.items():
        assert not leaks(content), f"a token in the {where}: {leaks(content)[:3]}"
