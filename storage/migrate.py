"""Schema migrations in code: upgrade a database to a revision and read where it stands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from storage.db import describe, make_engine
from storage.settings import SettingsError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x5747_4C42_4F54  # arbitrary, constant: "stylebot migrations"


def make_config(url: str, connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations, built without an alembic.ini."""
    cfg = Config()
    # ConfigParser interpolates %; a checkout path may contain one.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["url"] = url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def schema_connection(url: str) -> Iterator[Connection]:
    """A connection inside one transaction for schema changes; committed on success."""
    engine = make_engine(url)  # same pragmas and BEGIN IMMEDIATE as the application
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Batch mode rebuilds a table by copy, drop, rename; with foreign keys on, the
                # drop of a parent table fails or cascades. The pragma is ignored inside a
                # transaction, so set it first; disposing the engine keeps it off the pool.
                driver = conn.connection.driver_connection
                assert driver is not None  # a fresh connection always has one
                driver.execute("PRAGMA foreign_keys=OFF")
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Processes starting together must migrate one after another; SQLite's
                    # BEGIN IMMEDIATE already serialises them.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                yield conn
                if sqlite:
                    _check_foreign_keys(conn)
    finally:
        engine.dispose()


def _check_foreign_keys(conn: Connection) -> None:
    violations = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if violations:
        raise RuntimeError(f"migration left dangling foreign keys: {violations[:5]}")


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`, in one transaction; safe to race."""
    with schema_connection(url) as conn:
        command.upgrade(make_config(url, conn), revision)


def current(url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    """The newest revision in the migrations directory."""
    return ScriptDirectory.from_config(make_config("")).get_current_head()


def check_current(url: str) -> None:
    """Raise SettingsError (one line) unless the database is at this code's head revision."""
    at, want = current(url), head()
    if at == want:
        return
    where = f"STYLEBOT_DATABASE_URL: the database at {describe(url)}"
    if at is None:
        raise SettingsError(f"{where} has no stylebot tables: run `stylebot migrate`")
    known = {s.revision for s in ScriptDirectory.from_config(make_config("")).walk_revisions()}
    if at in known:
        raise SettingsError(
            f"{where} is at revision {at}, this code needs {want}: run `stylebot migrate`"
        )
    raise SettingsError(
        f"{where} is at revision {at}, newer than this code knows ({want}): "
        "run the stylebot version that migrated it"
    )
