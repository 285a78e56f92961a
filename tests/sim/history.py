"""The days before the viral day: the demand the relax lane's estimate reads from SQL.

`quota.relax.day_pattern` learns demand by hour of day from the last days' normal jobs and
busy or paused refusals. A fresh database has none, so every estimate says "can't tell yet".
Here the same people had the same burst at the same hour on each earlier day, then quiet:
each asked for their images one after another (a lane's next photo once the last result came
and they looked at it), and the same workers served them first come, first served; a request
that would wait past its tier's maximum was refused as busy, and the person either took the
relax offer (that lane ends: relax jobs are not demand the estimate counts) or came back when
the reply said. No surge lowered the free limit on those days, so the burst's hour holds
somewhat more demand than on the viral day itself (the summary prints both). The rows go into
SQL in one bulk insert per table, as admitted and made.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, insert

from bots.core.requests import ReplyTarget
from quota.tiers import Tier
from storage.db import transaction
from storage.models import Job, JobStatus, Lane, Rejection, User
from tests.sim.people import BURST_SHARE, LATER_SHARE, STYLES, Person

if TYPE_CHECKING:
    from tests.sim.viral_day import SimConfig


@dataclass(frozen=True)
class Past:
    """One request of an earlier day; `started` None: refused as busy."""

    user_id: str
    tier: str
    at: float  # seconds after that day's start
    started: float | None = None
    finished: float | None = None


Days = dict[int, list[Past]]  # days before the viral day -> that day's requests
Row = dict[str, object]


def past_days(people: list[Person], tiers: Mapping[str, Tier], config: SimConfig) -> Days:
    """The `config.history_days` days before the viral day, each its own draw of the same."""
    return {
        ago: past_day(people, tiers, config, random.Random(config.seed * 100 + ago))
        for ago in range(1, config.history_days + 1)
    }


def past_day(
    people: list[Person], tiers: Mapping[str, Tier], config: SimConfig, rng: random.Random
) -> list[Past]:
    """One earlier day of these people: a fresh draw of today's arrival profile, replayed on a
    first-come-first-served model of the same workers (see the module docstring)."""
    service_s, burst_s = config.service_s, config.burst_s
    free_at = [0.0] * config.workers  # when each worker is next free: a heap
    left = {p.user_id: min(p.habits.wants, tiers[p.tier].daily_limit) for p in people}
    seq = itertools.count()
    heap: list[tuple[float, int, Person]] = []
    for p in people:
        late = rng.random() > BURST_SHARE
        first = rng.uniform(burst_s, p.habits.late_s) if late else rng.uniform(0, burst_s)
        for lane in range(p.habits.lanes):
            heapq.heappush(heap, (first + 3.0 * lane, next(seq), p))
    day: list[Past] = []
    while heap:
        at, _, p = heapq.heappop(heap)
        if left[p.user_id] == 0:
            continue
        started = max(at, free_at[0])
        excess = started + service_s - at - tiers[p.tier].max_wait_s
        if excess > 0:
            day.append(Past(p.user_id, p.tier, at))
            if rng.random() >= LATER_SHARE:  # back when the reply said, give or take
                heapq.heappush(heap, (at + max(excess, 60.0) + rng.uniform(0, 30), next(seq), p))
            continue
        heapq.heapreplace(free_at, started + service_s)
        left[p.user_id] -= 1
        day.append(Past(p.user_id, p.tier, at, started, started + service_s))
        next_at = started + service_s + rng.uniform(*p.habits.think_s)
        heapq.heappush(heap, (next_at, next(seq), p))
    return day


def seed(engine: Engine, start: datetime, days: Days) -> None:
    """Users, and each earlier day's requests (`days`: days before `start` -> requests) as
    done normal-lane jobs and busy refusals: one executemany per table."""
    first = start - timedelta(days=max(days, default=0))
    users: dict[str, Row] = {}
    jobs: list[Row] = []
    refusals: list[Row] = []
    for ago, past in days.items():
        t0 = start - timedelta(days=ago)
        for r in past:
            name = r.user_id.partition(":")[2]
            users[r.user_id] = {
                "id": r.user_id,
                "username": name,
                "tier": r.tier,
                "created_at": first,
            }
            at = t0 + timedelta(seconds=r.at)
            if r.started is None:
                refusals.append(
                    {"user_id": r.user_id, "tier": r.tier, "reason": "busy", "created_at": at}
                )
            else:
                jobs.append(_job(r, at, t0, ago, len(jobs)))
    with transaction(engine) as s:
        for model, rows in ((User, [*users.values()]), (Job, jobs), (Rejection, refusals)):
            if rows:
                s.execute(insert(model), rows)


def _job(r: Past, at: datetime, t0: datetime, ago: int, n: int) -> Row:
    assert r.started is not None and r.finished is not None
    job_id = f"past-{ago}-{n}"
    finished = t0 + timedelta(seconds=r.finished)
    return {
        "id": job_id,
        "idempotency_key": f"past:{job_id}",
        "user_id": r.user_id,
        "platform": "console",
        "style": STYLES[n % len(STYLES)],
        "tier": r.tier,
        "status": JobStatus.DONE,
        "lane": Lane.NORMAL,
        "sort_key": at,
        "input_digest": hashlib.sha256(job_id.encode()).hexdigest(),  # distinct photos
        "quota_day": t0.date(),
        "reply_target": ReplyTarget("console", r.user_id).to_json(),
        "result_path": f"sim/{job_id}.jpg",
        "created_at": at,
        "token_at": at,
        "started_at": t0 + timedelta(seconds=r.started),
        "finished_at": finished,
        "delivered_at": finished,
    }
