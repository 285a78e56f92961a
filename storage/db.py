"""Engine and sessions. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for each transaction."""

from __future__ import annotations

import select
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from storage.settings import SettingsError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Also retire connections a middlebox may have dropped without a word (no FIN, so the
# check below can't see it); well above any idle timeout of ours, well below a day.
POOL_RECYCLE_S = 1800
CHECK_CONNECT_TIMEOUT_S = 5  # the start-up check: a host that never answers is a mistake too
URL_HINT = (
    "use postgresql+psycopg://USER:PASSWORD@HOST:5432/DBNAME, or leave it empty for a SQLite "
    "file under STYLEBOT_DATA_DIR"
)


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_recycle=POOL_RECYCLE_S)
        event.listen(engine, "checkout", _drop_if_server_hung_up)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )
    _make_sqlite_transactions_immediate(engine)
    return engine


def describe(url: str) -> str:
    """Where a database URL points, without its password: host:port/name, or the SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def check_database(url: str) -> None:
    """Connect once, briefly; a wrong or unreachable STYLEBOT_DATABASE_URL is one SettingsError."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise SettingsError(f"STYLEBOT_DATABASE_URL: not a database URL; {URL_HINT}") from None
    scheme = f"'{parsed.drivername}://'"
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError(
            f"STYLEBOT_DATABASE_URL: unknown scheme {scheme} (PostgreSQL or SQLite); {URL_HINT}"
        )
    try:
        engine = _check_engine(url)
    except (exc.NoSuchModuleError, ImportError):
        raise SettingsError(
            f"STYLEBOT_DATABASE_URL: no driver for {scheme} is installed; {URL_HINT}"
        ) from None
    except OSError as error:  # the SQLite file's folder cannot be made
        raise SettingsError(_unreachable(url, error)) from None
    try:
        with engine.connect():
            pass
    except (exc.DBAPIError, OSError) as error:
        raise SettingsError(_unreachable(url, error)) from None
    finally:
        engine.dispose()


def _check_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return make_engine(url)  # opening it takes the same pragmas, WAL included
    return create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CHECK_CONNECT_TIMEOUT_S}
    )


def _unreachable(url: str, error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    # psycopg: 'connection failed: connection to server at "h", port 1 failed: <the reason>'
    reason = " ".join(lines[0].rsplit("failed: ", 1)[-1].split()) if lines else ""
    reason = reason or type(error).__name__
    if make_url(url).get_backend_name() == "sqlite":
        return f"STYLEBOT_DATABASE_URL: cannot open the SQLite file {describe(url)} ({reason})"
    return (
        f"STYLEBOT_DATABASE_URL: cannot connect to PostgreSQL at {describe(url)} ({reason}): "
        "is it running, and is STYLEBOT_DATABASE_URL right?"
    )


def _drop_if_server_hung_up(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pre-ping without the round trip: a pooled connection must have nothing to read.

    pool_pre_ping cost each checkout a SELECT 1 (and the submit path checks out twice per
    request). When PostgreSQL restarts or ends a session it sends a FATAL message and closes
    the socket, so an idle connection it has dropped is readable; the pool then replaces it
    before use, as after a failed ping. What this misses and a ping would catch: a server gone
    silently (host down, a dropped route) is found by the first statement, which fails that
    one transaction and invalidates the pool; pool_recycle bounds how old a connection gets.
    A rare asynchronous message (a config reload's ParameterStatus) only costs a reconnect.
    """
    if dbapi_conn.closed:
        raise exc.DisconnectionError("connection closed")
    poller = select.poll()
    poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):  # readable, hung up or in error while idle: the server is done with it
        raise exc.DisconnectionError("server closed the connection")


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    # pysqlite's own BEGIN is deferred: two writers that both read first deadlock into
    # "database is locked". Take the write lock at BEGIN instead (SQLAlchemy's documented recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _use_wal(cur: Any) -> None:
    # WAL is a property of the file, set once. The switch needs an exclusive lock and SQLite
    # does not run the busy handler for it, so first connections racing here retry briefly.
    for attempt in range(50):
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.05 + 0.01 * attempt)


_open = threading.local()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    Not re-entrant: on SQLite a second transaction opened by the same thread would wait for the
    first one's write lock forever (well, for the busy timeout), so it fails at once instead.
    """
    depth = getattr(_open, "depth", 0)
    if depth and engine.dialect.name == "sqlite":
        raise RuntimeError("nested transaction on SQLite: pass the open session down instead")
    _open.depth = depth + 1
    try:
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        _open.depth = depth


def upsert_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT, for the session's dialect (SQLite or PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
