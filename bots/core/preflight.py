"""Start-up checks: an operator's mistake becomes one SettingsError line before any work starts.

Order: settings alone, then the disk (data directory, styles file), then the database. The
worker checks its broker itself (tasks/worker.py); the bots only publish, and a failed publish
is already a polite busy reply, so they start without it.
"""

from __future__ import annotations

import tempfile

from quota.products import ProductsError, load_products
from storage.db import check_database
from storage.migrate import check_current
from storage.settings import Settings, SettingsError
from tasks.styles import StylesError, load_styles

# How each command treats the schema: "head" needs it at this code's head revision (else: run
# `stylebot migrate`); "sqlite" migrates the embedded SQLite file itself and needs the head on
# PostgreSQL; "own" migrates whatever it is given; None: the command reads no database.
SCHEMA = {
    "demo": "own",
    "chat": "sqlite",
    "telegram": "sqlite",
    "discord": "sqlite",
    "admin": "head",
    "worker": "head",
    "migrate": "own",
    "bench": None,  # its own throwaway database and broker, from its own arguments
}


def preflight(settings: Settings, command: str) -> None:
    """Check what `command` depends on; raise SettingsError naming the first thing wrong."""
    schema = SCHEMA.get(command)
    if schema is None:
        return
    if command == "worker":
        from tasks.app import check_visibility_timeout

        check_visibility_timeout(settings)
    if command != "migrate" or not settings.database_url:  # migrate writes only the database
        check_data_dir(settings)
    if command != "migrate":
        check_styles(settings)
    if command not in ("migrate", "worker"):  # the bots sell; the worker only makes images
        check_products(settings)
    url = settings.sqlalchemy_url
    check_database(url)
    if schema == "head" or (schema == "sqlite" and not url.startswith("sqlite")):
        check_current(url)


def check_data_dir(settings: Settings) -> None:
    """The data directory exists (made if need be) and takes a new file."""
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".stylebot-write-check-"):
            pass
    except OSError as exc:
        reason = "a file, not a directory" if path.is_file() else exc.strerror or str(exc)
        raise SettingsError(
            f"STYLEBOT_DATA_DIR: cannot write to {path.absolute()} ({reason}): "
            "point it at a writable directory"
        ) from None


def check_styles(settings: Settings) -> None:
    try:
        load_styles(settings.styles_file)
    except StylesError as exc:
        raise SettingsError(f"STYLEBOT_STYLES_FILE: {' '.join(str(exc).split())}") from None


def check_products(settings: Settings) -> None:
    if settings.products_file is None:
        return
    try:
        load_products(settings.products_file)
    except ProductsError as exc:
        raise SettingsError(f"STYLEBOT_PRODUCTS_FILE: {exc}") from None
