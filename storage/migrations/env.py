"""Alembic environment: runs on a connection handed in by storage.migrate, or on a URL."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.migrate import schema_connection

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    """The database URL: set in code, then `-x url=...`, then sqlalchemy.url from the ini."""
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url")
    return url


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Render sqlmodel's own types as plain SQLAlchemy ones so revisions never import sqlmodel."""
    if type_ != "type":
        return False
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(is_sqlite: bool) -> dict[str, Any]:
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    return {
        "target_metadata": target_metadata,
        "render_as_batch": is_sqlite,
        "render_item": _render_item,
        "compare_type": True,
    }


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name == "sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Emit SQL for `alembic upgrade --sql` without connecting."""
    url = _url()
    context.configure(url=url, literal_binds=True, **_options(url.startswith("sqlite")))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate on the connection handed in, else on one of our own (the alembic CLI)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    with schema_connection(_url()) as conn:
        _run_on(conn)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
