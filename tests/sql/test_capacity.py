"""The load measurement and the capacity controls, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import Session

from bots.core import Runtime
from quota.capacity import SERVICE_SAMPLE, SERVICE_WINDOW, Load, jobs_ahead, measure
from quota.controls import MODE_KEY, capacity_mode, put, surge_level
from storage.db import transaction
from storage.models import Job, JobStatus, User, WorkerBeat

pytestmark = pytest.mark.sql

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
HEARTBEAT_S = 2.0


def add_job(s: Session, status: str, span_s: float | None = None, **fields: object) -> None:
    finished = fields.pop("finished_at", NOW - timedelta(seconds=30))
    assert isinstance(finished, datetime)
    started = None if span_s is None else finished - timedelta(seconds=span_s)
    s.add(
        Job(
            id=uuid.uuid4().hex,
            idempotency_key=uuid.uuid4().hex,
            user_id="console:m",
            platform="console",
            style=fields.pop("style", "ghibli"),
            quota_day=date(2026, 11, 22),
            reply_target="{}",
            status=status,
            started_at=started,
            finished_at=finished if status == JobStatus.DONE else None,
            **fields,
        )
    )


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    with transaction(runtime.engine) as s:
        s.exec(WorkerBeat.__table__.delete())
        s.add(User(id="console:m"))
        s.add(WorkerBeat(id="fresh", last_seen=NOW - timedelta(seconds=HEARTBEAT_S)))
        s.add(WorkerBeat(id="silent", last_seen=NOW - timedelta(seconds=4 * HEARTBEAT_S)))
    return runtime


def load(rt: Runtime, assumed: float = 3.0) -> Load:
    with transaction(rt.engine) as s:
        return measure(s, NOW, HEARTBEAT_S, assumed)


def test_without_finished_jobs_the_assumed_rate_stands(rt: Runtime) -> None:
    with transaction(rt.engine) as s:
        add_job(s, JobStatus.QUEUED)
        add_job(s, JobStatus.QUEUED)
        add_job(s, JobStatus.RUNNING, span_s=1)
    assert load(rt, assumed=7.5) == load_of(workers=1, seconds=7.5, queued=2, running=1)


def test_seconds_per_image_is_the_mean_span_per_image_of_recent_jobs(rt: Runtime) -> None:
    with transaction(rt.engine) as s:
        add_job(s, JobStatus.DONE, span_s=2.0)
        add_job(s, JobStatus.DONE, span_s=6.0, batch_size=3)  # 2 s per image
        add_job(s, JobStatus.DONE, span_s=5.0)
        add_job(s, JobStatus.DONE, span_s=0.25, batch_size=0)  # a bad size counts as 1
        too_old = NOW - SERVICE_WINDOW - timedelta(seconds=1)
        add_job(s, JobStatus.DONE, span_s=100.0, finished_at=too_old)
        add_job(s, JobStatus.FAILED)
    measured = load(rt)
    assert measured.seconds_per_image == pytest.approx((2 + 2 + 5 + 0.25) / 4, abs=0.002)


def test_only_the_latest_sample_of_jobs_counts(rt: Runtime) -> None:
    with transaction(rt.engine) as s:
        for i in range(SERVICE_SAMPLE):
            add_job(s, JobStatus.DONE, span_s=1.0, finished_at=NOW - timedelta(seconds=10 + i))
        add_job(s, JobStatus.DONE, span_s=50.0, finished_at=NOW - timedelta(seconds=500))
    assert load(rt).seconds_per_image == pytest.approx(1.0, abs=0.002)


def test_controls_are_read_once_per_transaction_and_see_their_own_writes(rt: Runtime) -> None:
    statements: list[str] = []
    event.listen(rt.engine, "before_cursor_execute", lambda *a, **_: statements.append(a[2]))
    with transaction(rt.engine) as s:
        assert (capacity_mode(s), surge_level(s)) == ("open", 0)
        assert len([q for q in statements if "controls" in q]) == 1
        put(s, MODE_KEY, "auto", NOW)
        assert capacity_mode(s) == "auto"


def test_a_later_transaction_of_the_same_session_reads_the_controls_afresh(rt: Runtime) -> None:
    with Session(rt.engine) as s:
        assert capacity_mode(s) == "open"
        s.commit()
        with transaction(rt.engine) as other:
            put(other, MODE_KEY, "closed", NOW)
        assert capacity_mode(s) == "closed"


def load_of(*, workers: int, seconds: float, queued: int, running: int) -> Load:
    return Load(workers=workers, seconds_per_image=seconds, queued=queued, running=running)


def test_the_load_statement_can_count_the_jobs_ahead_of_a_key(rt: Runtime) -> None:
    with transaction(rt.engine) as s:
        for seconds in (-60, -1, 0, 30):
            add_job(s, JobStatus.QUEUED, sort_key=NOW + timedelta(seconds=seconds))
        add_job(s, JobStatus.RUNNING, span_s=1, sort_key=NOW - timedelta(seconds=90))
    with transaction(rt.engine) as s:
        measured = measure(s, NOW, HEARTBEAT_S, 3.0, ahead_of=NOW)
        assert measured.ahead_of(NOW) == jobs_ahead(s, NOW) == 3  # ties count as ahead
    assert measured.ahead_of(NOW - timedelta(seconds=1)) is None  # not counted for that key
    assert load(rt).ahead_of(NOW) is None


def test_a_style_is_estimated_at_its_own_measured_speed(rt: Runtime) -> None:
    """A few-step preset made in 1 s next to a 30-step one made in 5 s: each request's own
    service time is its style's, the queue ahead is served at the mean of both."""
    with transaction(rt.engine) as s:
        for _ in range(3):
            add_job(s, JobStatus.DONE, span_s=1.0, style="fast")
            add_job(s, JobStatus.DONE, span_s=5.0, style="best")
        add_job(s, JobStatus.QUEUED, sort_key=NOW - timedelta(seconds=1))
    with transaction(rt.engine) as s:
        fast = measure(s, NOW, HEARTBEAT_S, 3.0, style="fast")
        best = measure(s, NOW, HEARTBEAT_S, 3.0, style="best")
        unseen = measure(s, NOW, HEARTBEAT_S, 3.0, style="new", ahead_of=NOW)
    assert fast.own_seconds == pytest.approx(1.0, rel=1e-4)  # SQLite: julianday, to 1 ms
    assert best.own_seconds == pytest.approx(5.0, rel=1e-4) and unseen.own_seconds is None
    assert fast.seconds_per_image == pytest.approx(3.0, rel=1e-4)  # the mix, for the queue
    assert fast.wait_for(1) == pytest.approx(3.0 + 1.0, rel=1e-4)
    assert best.wait_for(1) == pytest.approx(3.0 + 5.0, rel=1e-4)
    assert unseen.wait_for(1) == pytest.approx(3.0 + 3.0, rel=1e-4)
    assert unseen.ahead_of(NOW) == 1
