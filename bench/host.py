"""What a benchmark runs on and against: this machine, the PostgreSQL server (a throwaway
database, its checkpoint count), and the error and progress line every benchmark shares."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a worker died, a request refused)."""


def say(message: str) -> None:
    """A progress line on stderr (stdout carries the report)."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    python: str
    redis: str
    postgres: str

    def line(self) -> str:
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), Python {self.python}, "
            f"Redis {self.redis}, PostgreSQL {self.postgres}"
        )


def machine_info(admin: Engine, broker: Any) -> Machine:
    """This machine's CPUs and Python, and the versions of the PostgreSQL and Redis servers."""
    from sqlalchemy import text

    if admin.dialect.name == "sqlite":
        import sqlite3

        pg = f"not used (SQLite {sqlite3.sqlite_version})"
    else:
        with admin.connect() as conn:
            pg = str(conn.execute(text("SHOW server_version")).scalar()).split()[0]
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Machine(
        cpus=cpus or 1,
        cpu_model=model,
        python=platform.python_version(),
        redis=str(broker.info("server").get("redis_version", "?")),
        postgres=pg,
    )


@contextlib.contextmanager
def throwaway_database(admin: Engine) -> Iterator[str]:
    """A new empty database on the admin URL's server, as a URL; dropped (FORCE) afterwards.
    For a SQLite admin URL (a machine without PostgreSQL): a new file in the system temp dir."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    if admin.dialect.name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="stylebot-bench-db-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return

    name = f"stylebot_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:  # AUTOCOMMIT: CREATE DATABASE can't run in a transaction
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise BenchError(f"PostgreSQL at {admin.url!r}: {exc.orig}") from None
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:  # FORCE: a lingering worker connection must not block it
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        say(f"bench: dropped database {name}")


def pg_checkpoints(engine: Engine) -> int | None:
    """Checkpoints the PostgreSQL server has run (timed + requested); None if unreadable."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    for query in (
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer",  # PostgreSQL 17+
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
    ):
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(query)).scalar_one())
        except SQLAlchemyError:
            continue
    return None


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or "(no log)"."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
