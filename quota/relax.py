"""When will a relax-lane job probably run? From the measured throughput and the day's pattern.

A relax job runs on spare capacity only: what the workers can do in an hour minus the normal
demand arriving in that hour. Before it, the queued normal backlog and the relax jobs ahead of
it must be made. Demand for each coming hour is read from the same hour of the last days
(normal jobs admitted, plus each person refused as busy or paused once per hour: what people
asked for, not how often they retried). The rest of this hour expects what its history still
has to bring, or, on a day busier than its history (or with none), the last minutes' rate;
an hour with no history takes that rate too, for the next hour only. Beyond that, an hour
with no history has no estimate: a fresh deployment in the middle of a burst says "can't tell
yet" rather than promise an hour it has no reason to expect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from quota.capacity import Load
from storage.models import Job, JobStatus, Lane, Rejection

HISTORY_DAYS = 7
RECENT = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DEMAND_REASONS = ("busy", "paused")  # refusals that were demand for a GPU


@dataclass(frozen=True)
class Pattern:
    """Requests per hour of the day in the history, in the last minutes, and so far this hour."""

    by_hour: dict[int, float]
    recent_per_hour: float
    this_hour: float = 0.0  # requests since this hour began

    def expected(self, at: datetime, hours: float, slot: int) -> float | None:
        """Requests expected in the slot of `hours` starting `at` (slot 0: the rest of this
        hour); None where nothing tells: an hour after the next with no history.

        The rest of this hour: what its history still has to come, while the day keeps within
        its history (a burst that usually ends within the hour ends); on a day busier than
        any before, the last minutes' rate."""
        usual = self.by_hour.get(at.hour)
        if slot == 0:
            if usual is not None and self.this_hour < usual:
                return usual - self.this_hour
            return self.recent_per_hour * hours
        rate = usual if usual is not None else self.recent_per_hour if slot == 1 else None
        return None if rate is None else rate * hours


def _arrivals(session: Session, since: datetime, until: datetime) -> list[datetime]:
    """Normal jobs admitted, and people refused as busy or paused (once per person and hour:
    someone retrying every minute is one person's demand, not sixty)."""
    jobs = session.exec(
        select(Job.created_at).where(
            Job.lane == Lane.NORMAL, col(Job.created_at) >= since, col(Job.created_at) < until
        )
    ).all()
    refused = session.exec(
        select(Rejection.user_id, Rejection.created_at).where(
            col(Rejection.reason).in_(DEMAND_REASONS),
            col(Rejection.created_at) >= since,
            col(Rejection.created_at) < until,
        )
    ).all()
    firsts: dict[tuple[str, datetime], datetime] = {}
    for user_id, at in refused:
        hour = at.replace(minute=0, second=0, microsecond=0)
        firsts.setdefault((user_id, hour), at)
    return [*jobs, *firsts.values()]


def day_pattern(session: Session, now: datetime) -> Pattern:
    """Demand by hour of day over the last HISTORY_DAYS whole days, and over the last minutes."""
    today = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=now.hour)
    start = today - timedelta(days=HISTORY_DAYS)
    counts: dict[tuple[int, int], int] = defaultdict(int)  # (days ago, hour) -> requests
    for at in _arrivals(session, start, today):
        at = at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
        counts[((today - at).days, at.hour)] += 1
    days_seen = {day for day, _ in counts}
    by_hour: dict[int, float] = {}
    if days_seen:
        for hour in range(24):
            by_hour[hour] = sum(counts[(d, hour)] for d in days_seen) / len(days_seen)
    soon = now + timedelta(seconds=1)
    recent = len(_arrivals(session, now - RECENT, soon))
    this_hour = len(_arrivals(session, now.replace(minute=0, second=0, microsecond=0), soon))
    return Pattern(by_hour, recent * (HOUR / RECENT), this_hour)


def relax_ahead(session: Session, job: Job | None) -> int:
    """Queued relax jobs served before `job` (all of them when `job` is None: a newcomer)."""
    stmt = (
        select(func.count())
        .select_from(Job)
        .where(Job.status == JobStatus.QUEUED, Job.lane == Lane.RELAX)
    )
    if job is not None:
        stmt = stmt.where(col(Job.created_at) < job.created_at)
    return int(session.exec(stmt).one())


def relax_wait(
    pattern: Pattern, load: Load, now: datetime, need: int, horizon: timedelta
) -> float | None:
    """Seconds until `need` more images fit into spare capacity (normal backlog, relax jobs
    ahead and this one), walking hour by hour; None if not within `horizon`."""
    per_hour = 3600.0 * max(load.workers, 1) / load.seconds_per_image
    remaining, at, slot = float(need), now, 0
    end = now + horizon
    while at < end:
        slot_end = min(at.replace(minute=0, second=0, microsecond=0) + HOUR, end)
        hours = (slot_end - at).total_seconds() / 3600.0
        demand = pattern.expected(at, hours, slot)
        if demand is None:
            return None
        spare = max(0.0, per_hour * hours - demand)
        if spare >= remaining:
            return (at - now).total_seconds() + remaining / spare * hours * 3600.0
        remaining -= spare
        at, slot = slot_end, slot + 1
    return None
