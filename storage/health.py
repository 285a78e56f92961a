"""`stylebot health bot|worker`: the container healthchecks (compose, Kubernetes probes).

- bot: its delivery and housekeeping loops each mark a file on every pass (in the container's
  temp directory); healthy when both marked recently and the database answers.
- worker: healthy when a worker process of this host (its container) has a fresh heartbeat row.
  A worker beats only once warm-up (model load, compile) is done, so until then this says
  "starting": compose's start_period and Kubernetes' startupProbe give warm-up its time. A
  pool child that replaces one killed at its hard time limit warms up again: once the
  container has been ready, that counts as healthy (for up to 30 minutes), not as dead.
Each answers with one line and exit status 0 (healthy) or 1.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, text
from sqlmodel import col, select

from storage.db import make_engine, transaction
from storage.models import WorkerBeat, utcnow
from storage.settings import Settings

BOT_LOOPS = ("delivery", "maintenance")
LOOP_STALE_S = 120.0  # a loop pass every 0.5-5 s; a minute of silence means it is stuck
REWARM_LIMIT_S = 1800.0  # a re-warm longer than the first warm-up is allowed is stuck


def alive_dir() -> Path:
    return Path(os.environ.get("STYLEBOT_ALIVE_DIR") or tempfile.gettempdir()) / "stylebot-alive"


def mark_alive(loop: str) -> None:
    """A bot loop finished a pass (its outcome aside: the loop itself is running)."""
    folder = alive_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / loop).touch()
    except OSError:  # a read-only temp dir must not stop delivery; the check will say so
        pass


def clear_alive(name: str) -> None:
    (alive_dir() / name).unlink(missing_ok=True)


def rewarming() -> float | None:
    """Seconds a pool child of this container has been warming up, when the container's
    workers were ready before (a child replaced after its hard time limit warms up again):
    that is a worker at work, not a dead one. None otherwise."""
    folder = alive_dir()
    if not (folder / "worker").exists():
        return None  # never ready yet: the first warm-up is "starting"
    for marker in folder.glob("warming-*"):
        pid = int(marker.name.removeprefix("warming-") or 0)
        try:
            os.kill(pid, 0)
            age = time.time() - marker.stat().st_mtime
        except (OSError, ValueError):
            continue  # its process is gone
        if age < REWARM_LIMIT_S:
            return age
    return None


def check_bot(settings: Settings) -> tuple[bool, str]:
    now = time.time()
    for loop in BOT_LOOPS:
        try:
            age = now - (alive_dir() / loop).stat().st_mtime
        except OSError:
            return False, f"unhealthy: the {loop} loop has not run yet"
        if age > LOOP_STALE_S:
            return False, f"unhealthy: the {loop} loop last ran {age:.0f} s ago"
    ok, why = _database(settings)
    if not ok:
        return False, why
    return True, "healthy: delivery and housekeeping running, database reachable"


def check_worker(settings: Settings, host: str | None = None) -> tuple[bool, str]:
    host = host or socket.gethostname()
    fresh = timedelta(seconds=3 * settings.worker_heartbeat_s + 5)
    try:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            with transaction(engine) as s:
                last = s.exec(
                    select(func.max(WorkerBeat.last_seen)).where(
                        col(WorkerBeat.id).startswith(f"{host}:")
                    )
                ).one()
        finally:
            engine.dispose()
    except Exception as exc:
        return False, f"unhealthy: database unreachable or not migrated ({type(exc).__name__})"
    age = None if last is None else utcnow() - _aware(last)
    if (age is None or age > fresh) and (warming := rewarming()) is not None:
        return True, f"healthy: a replaced pool child is warming up ({warming:.0f} s)"
    if age is None:
        return False, "starting: no heartbeat from this host yet (loading or compiling models)"
    if age > fresh:
        return False, f"unhealthy: last heartbeat {age.total_seconds():.0f} s ago"
    return True, f"healthy: heartbeat {age.total_seconds():.0f} s ago"


def _database(settings: Settings) -> tuple[bool, str]:
    try:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        return False, f"unhealthy: database unreachable ({type(exc).__name__})"
    return True, ""


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
