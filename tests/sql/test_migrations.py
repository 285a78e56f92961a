"""Migrations build exactly the schema the SQLModel tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage import migrate
from storage.db import make_engine
from tests.dbutil import fresh_database

pytestmark = pytest.mark.sql

TABLES = {
    "users",
    "offers",
    "payments",
    "jobs",
    "usage",
    "ledger",
    "controls",
    "audit",
    "rejections",
    "worker_beats",
    "alembic_version",
}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def _schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_empty_database_has_no_revision(db_url: str) -> None:
    assert migrate.current(db_url) is None
    assert _table_names(db_url) == set()


def test_upgrade_creates_schema_matching_models(db_url: str) -> None:
    migrate.upgrade(db_url)

    assert migrate.current(db_url) == "0009" == migrate.head()
    assert _table_names(db_url) == TABLES
    assert _schema_diff(db_url) == []


def test_upgrade_is_idempotent(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.upgrade(db_url)

    assert migrate.current(db_url) == "0009"


def test_concurrent_upgrades_do_not_collide(db_url: str) -> None:
    """Workers starting at once each call upgrade(); they must queue, not collide.

    Threads stand in for processes: the database lock is taken before Alembic (whose context is
    process-global) runs, so only one thread is ever inside it.
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(migrate.upgrade, db_url) for _ in range(4)]:
            future.result()

    assert migrate.current(db_url) == "0009"
    assert _schema_diff(db_url) == []


def test_downgrade_to_base_removes_everything(db_url: str) -> None:
    migrate.upgrade(db_url)
    with migrate.schema_connection(db_url) as conn:
        command.downgrade(migrate.make_config(db_url, conn), "base")

    assert migrate.current(db_url) is None
    assert _table_names(db_url) == {"alembic_version"}


def test_diff_detects_drift(db_url: str) -> None:
    """Guard against a vacuous pass: a schema short of one index must show up as a difference."""
    migrate.upgrade(db_url)
    with migrate.schema_connection(db_url) as conn:
        conn.exec_driver_sql("DROP INDEX ix_jobs_status")

    diff = _schema_diff(db_url)

    assert [d[0] for d in diff] == ["add_index"]


def test_upgrade_from_0001_keeps_queued_jobs_in_arrival_order(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    with migrate.schema_connection(db_url) as conn:
        conn.exec_driver_sql(
            "INSERT INTO users (id, tier, banned, locale, in_flight, created_at) "
            "VALUES ('console:old', 'free', false, 'en', 1, '2026-11-01 10:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, idempotency_key, user_id, platform, style, status, attempts, "
            "quota_day, locale, reply_target, created_at) VALUES "
            "('0123456789abcdef0123456789abcdef', 'k1', 'console:old', 'console', 'ghibli', "
            "'queued', 0, '2026-11-01', 'en', '{}', '2026-11-01 10:00:05')"
        )
    migrate.upgrade(db_url)
    with migrate.schema_connection(db_url) as conn:
        row = conn.exec_driver_sql("SELECT tier, sort_key, created_at FROM jobs").one()
        credits = conn.exec_driver_sql("SELECT extra_credits FROM users").scalar_one()
    assert row[0] == "free" and row[1] == row[2] and credits == 0
