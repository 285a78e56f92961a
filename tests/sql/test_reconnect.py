"""Pooled PostgreSQL connections that the server has closed are replaced before use."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from storage.db import _drop_if_server_hung_up, make_engine, transaction

pytestmark = pytest.mark.sql


def _pooled_backends(engine: Engine, n: int) -> list[int]:
    """Open n connections at once and return them to the pool; their server process ids."""
    conns = [engine.connect() for _ in range(n)]
    pids = [int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) for c in conns]
    for c in conns:
        c.close()
    return pids


def _terminate(db_url: str, pids: list[int]) -> None:
    """What a server restart does to each session: FATAL, then the socket closes."""
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                left = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": pids},
                ).scalar_one()
                if left == 0:
                    return
                time.sleep(0.02)
            raise AssertionError("terminated backends did not go away")
    finally:
        admin.dispose()


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to lose")
    return db_url


def test_every_connection_the_server_closed_is_replaced_before_use(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        _terminate(pg_url, _pooled_backends(engine, 3))
        time.sleep(0.05)  # the FATAL message and the FIN reach the client
        for _ in range(3):  # each pooled connection in turn, none of them fails a transaction
            with transaction(engine) as s:
                assert s.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_without_the_check_a_closed_connection_fails_its_transaction(pg_url: str) -> None:
    """The control: the termination above really does break pooled connections."""
    engine = make_engine(pg_url)
    event.remove(engine, "checkout", _drop_if_server_hung_up)
    try:
        _terminate(pg_url, _pooled_backends(engine, 1))
        time.sleep(0.05)
        with pytest.raises(OperationalError), transaction(engine) as s:
            s.execute(text("SELECT 1"))
    finally:
        engine.dispose()
