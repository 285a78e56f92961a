"""Fresh, empty databases for tests: a SQLite file or a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KINDS = ("sqlite", "postgres")


def postgres_url() -> str:
    """The PostgreSQL server tests use: STYLEBOT_TEST_DATABASE_URL, else the local default."""
    return os.environ.get("STYLEBOT_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new empty database of `kind` ("sqlite" or "postgres"); drop it after."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'stylebot-{uuid.uuid4().hex[:8]}.db'}"
    elif kind == "postgres":
        with _fresh_postgres() as url:
            yield url
    else:
        raise ValueError(f"unknown database kind {kind!r}; expected one of {KINDS}")


@contextmanager
def _fresh_postgres() -> Iterator[str]:
    base = make_url(postgres_url())
    name = f"stylebot_t_{uuid.uuid4().hex[:12]}"
    # CREATE/DROP DATABASE cannot run in a transaction, hence AUTOCOMMIT.
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        _create_database(admin, name)
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                # FORCE: a test that leaked a connection must not leave the database behind.
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _create_database(admin: Engine, name: str) -> None:
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        reason = f"PostgreSQL unreachable at {admin.url!r}: {exc.orig}"
        # In CI a missing database is a broken pipeline, not an optional extra.
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
