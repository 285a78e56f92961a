"""A viral day, simulated: 200 people in a burst against real SQL and the real core.

Requests go through `Core.submit` (admission, quota reservation, enqueue), a pool of simulated
GPU workers of fixed throughput claims them in the SQL queue order and settles them with the
real lifecycle, and `Maintenance.run_once` (auto surge, reaper, relax expiry) runs every few
seconds; only the clock is simulated. Half the people take the relax lane's offer ("do it when
there's room") when refused as busy, and wait for that result instead of trying again. The
database starts with the same burst on each of the days before (tests.sim.history), which the
relax lane's estimate reads. `python -m tests.sim.viral_day [--db postgres] [--share 0.25]
[--history-days 3]` prints the summary table.
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from bots.core import (
    Admin,
    AdminRequest,
    Command,
    Core,
    ImageRequest,
    Maintenance,
    ReplyTarget,
    Sender,
    build_runtime,
)
from quota.controls import surge_level
from storage.db import transaction
from storage.jobs import ensure_user
from storage.migrate import upgrade
from storage.models import Job, Lane
from storage.settings import Settings
from tests.sim.engine import Events, SimClock, WorkerPool
from tests.sim.history import past_days, seed
from tests.sim.people import (
    COME_BACK_S,
    STYLES,
    Answer,
    Outcome,
    Person,
    PhotoMaker,
    population,
    read_reply,
    told_eta,
)
from tests.sim.report import DayResult, Sent, Taken, collect, render

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SimConfig:
    people: dict[str, int] = field(default_factory=lambda: {"free": 150, "plus": 35, "pro": 15})
    workers: int = 2
    service_s: float = 7.0  # per image: 2 workers make 1 image every 3.5 s
    burst_s: float = 300.0  # 85% of the people arrive within the first 5 minutes
    tick_s: float = 5.0  # maintenance (auto surge + reaper) and worker heartbeats
    horizon_s: float = 4 * 3600.0  # the longest the day may run
    seed: int = 2026
    history_days: int = 3  # earlier days with the same burst, in SQL before the day starts
    # The defaults of storage.settings, spelled out so the summary can print them.
    surge: dict[str, int] = field(
        default_factory=lambda: {
            "surge_high_wait_s": 300,
            "surge_low_wait_s": 60,
            "surge_window_s": 120,
            "surge_min_free_limit": 1,
        }
    )

    def scaled(self, share: float) -> SimConfig:
        """`share` of the people on `share` of the throughput: the same pressure, fewer requests."""
        people = {tier: round(n * share) for tier, n in self.people.items()}
        workers = max(1, round(self.workers * share))
        service_s = self.service_s * workers / (self.workers * share)
        return replace(self, people=people, workers=workers, service_s=service_s)


def sim_settings(url: str, data_dir: Path, config: SimConfig) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        timezone="UTC",
        _env_file=None,  # type: ignore[call-arg]
        **config.surge,  # type: ignore[arg-type]
    )


class ViralDay:
    def __init__(self, url: str, data_dir: Path, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        upgrade(url)
        self.pool = WorkerPool(config.workers, config.service_s)
        self.rt = build_runtime(sim_settings(url, data_dir, config), enqueue=self.pool.enqueue)
        self.clock = SimClock(START)
        self.rt.clock = self.clock
        self.pool.engine = self.rt.engine
        self.core = Core(self.rt)
        self.maintenance = Maintenance(self.rt)
        self.events = Events(self.clock)
        self.rng = random.Random(config.seed)
        self.people = population(config.people, config.burst_s, self.rng)
        seed(self.rt.engine, START, past_days(self.people, self.rt.tiers, config))
        self.photos = PhotoMaker(config.seed)
        self.sent: list[Sent] = []
        self.taken: list[Taken] = []
        self.kept: dict[str, bytes] = {}  # source -> photo: what the platform would still hold
        self.owner: dict[str, Person] = {}
        self._keys = itertools.count(1)

    def run(self) -> DayResult:
        began = time.perf_counter()
        try:
            self._open_the_day()
            while self.events.run_next(until=self.config.horizon_s):
                self._dispatch()
            return collect(self, START, time.perf_counter() - began)
        finally:
            self.rt.engine.dispose()

    # --- setup and housekeeping -----------------------------------------------------------

    def _open_the_day(self) -> None:
        self.pool.beat(self.clock())
        admin = Admin(self.core)
        self._admin(admin, "capacity", "auto")
        for p in self.people:
            if p.tier != "free":
                with transaction(self.rt.engine) as s:
                    ensure_user(s, p.user_id, p.user_id.partition(":")[2], "en")
                self._admin(admin, "settier", p.user_id, p.tier)
            for lane in range(p.habits.lanes):
                self.events.at(p.arrives + 3.0 * lane, partial(self._send, p))
        self.events.at(self.config.tick_s, self._tick, background=True)

    @staticmethod
    def _admin(admin: Admin, verb: str, *args: str) -> None:
        reply, ok = admin.run(AdminRequest("shell:sim", "en", Command(verb, args)))
        assert ok, reply.text

    def _tick(self) -> None:
        self.pool.beat(self.clock())
        self.maintenance.run_once()
        if not self._over():
            self.events.at(self.clock.t + self.config.tick_s, self._tick, background=True)

    def _over(self) -> bool:
        """Nobody has anything left to do, the queue is empty and surge is back at 0."""
        if self.events.foreground or self.pool.busy:
            return False
        with transaction(self.rt.engine) as s:
            return surge_level(s) == 0

    # --- people ----------------------------------------------------------------------------

    @staticmethod
    def _sender(p: Person) -> Sender:
        return Sender(p.user_id, p.user_id.partition(":")[2], "en")

    def _send(self, p: Person) -> None:
        if not p.wants_more():
            return
        data = self.photos()
        key = f"sim:{next(self._keys)}"
        req = ImageRequest(
            sender=self._sender(p),
            target=ReplyTarget("console", p.user_id),
            style=self.rng.choice(STYLES),
            idempotency_key=key,
            fetch=lambda: data,
            source=key,  # the photo can be fetched again: a refusal may offer the relax lane
        )
        reply = self.core.submit(req)
        answer = read_reply(reply)
        self.sent.append(Sent(self.clock.t, p.user_id, p.tier, answer, reply.text))
        if reply.job_id is not None:
            p.admitted += 1
            self.owner[reply.job_id] = p
        if answer.offer_id is not None and p.later_after_s is not None:
            self.kept[key] = data  # they take the offer, then wait for it instead of retrying
            take = partial(self._take_offer, p, answer.offer_id, self.clock.t)
            self.events.at(self.clock.t + p.later_after_s, take)
            return
        self._react(p, answer)

    def _take_offer(self, p: Person, offer_id: str, offered: float) -> None:
        """ "Do it when there's room": the core fetches the photo again from its source."""
        reply = self.core.accept_later(self._sender(p), offer_id, self.kept.pop)
        taken = Taken(
            self.clock.t, p.user_id, p.tier, offered, reply.job_id, told_eta(reply), reply.text
        )
        self.taken.append(taken)
        if reply.job_id is None:  # e.g. the free limit was lowered meanwhile: read as any reply
            self._react(p, read_reply(reply))
            return
        p.relaxed += 1
        self.owner[reply.job_id] = p

    def _react(self, p: Person, answer: Answer) -> None:
        """What the person does next; a result (see _finish) brings the next photo."""
        t = self.clock.t
        match answer.outcome:
            case Outcome.QUEUED if p.impatient and p.admitted == 1:
                self.events.at(t + 20.0, partial(self._send, p))  # "did it work?": again
            case Outcome.BUSY:  # back when the reply said, give or take half a minute
                back = t + (answer.wait_s or 60.0) + self.rng.uniform(0, 30)
                self.events.at(back, partial(self._send, p))
            case Outcome.QUOTA if answer.lowered and not p.came_back:
                p.came_back = True  # "lowered for now": worth another try later
                self.events.at(t + COME_BACK_S, partial(self._send, p))
        # in-flight: wait for the result; other (unexpected, asserted absent): give up

    # --- workers ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        for worker_id, job in self.pool.dispatch(self.clock()):
            finish = partial(self._finish, worker_id, job)
            self.events.at(self.clock.t + self.config.service_s, finish)

    def _finish(self, worker_id: str, job: Job) -> None:
        self.pool.finish(worker_id, job, self.clock())
        p = self.owner[job.id]
        if job.lane == Lane.RELAX:
            p.relax_received += 1
        else:
            p.received += 1
        self.events.at(self.clock.t + self.rng.uniform(*p.habits.think_s), partial(self._send, p))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=SimConfig().seed)
    parser.add_argument("--share", type=float, default=1.0, help="of the people and throughput")
    parser.add_argument("--history-days", type=int, default=SimConfig().history_days)
    args = parser.parse_args(argv)
    from tests.dbutil import fresh_database

    config = SimConfig(seed=args.seed, history_days=args.history_days).scaled(args.share)
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as url:
        result = ViralDay(url, Path(tmp) / "data", config).run()
        print(render(result))


if __name__ == "__main__":
    main()
