"""Shared fixtures: a fresh database per test (SQLite and PostgreSQL), settings, a runtime."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from bots.core import Core, Runtime, build_runtime
from storage.db import transaction
from storage.migrate import upgrade
from storage.models import WorkerBeat, utcnow
from storage.settings import Settings
from tests.dbutil import fresh_database

DB_KINDS = ["sqlite", "postgres"]


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind; PostgreSQL fails (not skips) in CI if absent."""
    with fresh_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, _env_file=None)  # type: ignore[call-arg]


class RecordingQueue:
    """Stands in for the Celery publisher in tests that don't run a worker."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail = False

    def __call__(self, job_id: str) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append(job_id)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def runtime(settings: Settings, queue: RecordingQueue) -> Iterator[Runtime]:
    """A runtime whose admission sees one live worker (no worker process runs here)."""
    rt = build_runtime(settings, enqueue=queue)
    pretend_a_worker_is_live(rt)
    yield rt
    rt.engine.dispose()


class Clock:
    """A clock the test moves by hand (runtime.clock = Clock(start))."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(request: pytest.FixtureRequest, runtime: Runtime) -> Clock:
    """The runtime's clock, starting at the test module's T0."""
    runtime.clock = clock = Clock(request.module.T0)
    return clock


@pytest.fixture
def core(runtime: Runtime) -> Core:
    return Core(runtime)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A small photo-like JPEG: a gradient with a few shapes."""
    path = tmp_path / "photo.jpg"
    make_photo(path)
    return path


def make_photo(path: Path, size: tuple[int, int] = (160, 120)) -> Path:
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    for i, colour in enumerate([(200, 40, 40), (40, 160, 60), (30, 60, 200)]):
        img.paste(colour, (10 + 45 * i, 30, 45 + 45 * i, 90))
    img.save(path, "JPEG", quality=90)
    return path


PLACEHOLDER_BEAT = "test:placeholder"


def pretend_a_worker_is_live(rt: Runtime) -> None:
    """A heartbeat that stays fresh for the whole test, so admission sees capacity."""
    with transaction(rt.engine) as s:
        s.add(WorkerBeat(id=PLACEHOLDER_BEAT, last_seen=utcnow() + timedelta(hours=1)))
