"""What the viral day left in SQL and in people's chats, and the summary table of it."""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from bots.core.messages import duration
from quota.controls import surge_level
from quota.relax import day_pattern
from quota.tiers import TIER_NAMES, Tier
from storage.db import transaction
from storage.models import AuditEntry, Job, LedgerEntry, Offer, Rejection, Usage, User
from storage.settings import Settings
from tests.sim.people import LATER_PONDER_S, LATER_SHARE, Answer, Outcome, Person

if TYPE_CHECKING:
    from tests.sim.viral_day import SimConfig, ViralDay


@dataclass(frozen=True)
class Sent:
    """One photo a person sent, and the answer they read."""

    t: float  # seconds after the start
    user_id: str
    tier: str
    answer: Answer
    text: str


@dataclass(frozen=True)
class Taken:
    """One press of "do it when there's room", and what the person read."""

    t: float
    user_id: str
    tier: str
    offered: float  # when the refusal that made the offer came
    job_id: str | None  # the relax-lane job, if the press admitted one
    eta_s: float | None  # the estimate told; None: "can't tell yet", or not admitted
    text: str


@dataclass(frozen=True)
class JobRow:
    id: str
    user_id: str
    tier: str
    lane: str
    status: str
    error: str | None
    created: float  # seconds after the start, like every time below
    started: float | None
    finished: float | None

    @property
    def wait(self) -> float:
        """From the request to the result, as the person waited for it."""
        assert self.finished is not None, self.id
        return self.finished - self.created


@dataclass(frozen=True)
class Estimate:
    """A relax estimate told on a press, against what happened."""

    t: float  # the press (the relax job's admission)
    told: float  # seconds, as the reply said them (whole minutes)
    actual: float  # from the press to the result
    ahead: int  # images to make first, this one included: normal queued, relax queued before

    @property
    def ratio(self) -> float:
        return self.told / self.actual


def _ahead(jobs: list[JobRow], t: float) -> int:
    """What a relax job admitted at `t` waits for: every normal job queued then, the relax jobs
    queued before it, and itself (as quota.relax counts it)."""
    queued = [j for j in jobs if j.created <= t < (math.inf if j.started is None else j.started)]
    return sum(j.lane == "normal" or j.created < t for j in queued) + 1


@dataclass(frozen=True)
class SurgeStep:
    t: float
    before: int
    after: int


@dataclass(frozen=True)
class DayResult:
    config: SimConfig
    settings: Settings
    tiers: dict[str, Tier]
    start: datetime
    people: list[Person]
    sent: list[Sent]
    taken: list[Taken]
    jobs: list[JobRow]
    offers: list[tuple[str, str, str | None]]  # (offer, user, job it admitted)
    steps: list[SurgeStep]  # audited by the auto surge control, in order
    usage: list[tuple[str, date, int]]  # (user, day, used)
    ledger: list[tuple[str, str, str]]  # (job, user, kind)
    in_flight: dict[str, int]  # user -> in-flight counter at the end
    rejections: Counter[tuple[str, str]]  # (tier, reason) -> rows in SQL
    pattern: dict[int, float]  # the earlier days' demand by hour, as the relax estimate reads it
    final_level: int
    end_s: float  # simulated seconds the day ran
    wall_s: float  # real seconds it took

    def __repr__(self) -> str:  # short, for assertion messages
        return f"DayResult({len(self.people)} people, {len(self.jobs)} jobs, {self.end_s:.0f} s)"

    def answers(self, tier: str, outcome: Outcome) -> list[Sent]:
        return [s for s in self.sent if s.tier == tier and s.answer.outcome == outcome]

    def done(self, tier: str) -> list[JobRow]:
        """The tier's normal requests that were made: the ones its wait promise covers."""
        return [j for j in self.normal() if j.tier == tier and j.status == "done"]

    def normal(self) -> list[JobRow]:
        return [j for j in self.jobs if j.lane == "normal"]

    def relax(self) -> list[JobRow]:
        return [j for j in self.jobs if j.lane == "relax"]

    def hour(self, t: float) -> int:
        """The hour of day at `t` seconds after the start."""
        return (self.start + timedelta(seconds=t)).hour

    def estimates(self) -> list[Estimate]:
        """Each press admitted with an estimate, and when its result came."""
        jobs = {j.id: j for j in self.relax()}
        return [
            Estimate(k.t, k.eta_s, jobs[k.job_id].wait, _ahead(self.jobs, k.t))
            for k in self.taken
            if k.job_id is not None and k.eta_s is not None and jobs[k.job_id].finished
        ]

    def free_limit(self, level: int) -> int:
        base, floor = self.tiers["free"].daily_limit, self.settings.surge_min_free_limit
        return max(min(floor, base), base - level)


def _secs(dt: datetime | None, start: datetime) -> float | None:
    if dt is None:
        return None
    return ((dt if dt.tzinfo else dt.replace(tzinfo=UTC)) - start).total_seconds()


def _jobs(s: Session, start: datetime) -> list[JobRow]:
    """The day's jobs (not the earlier days' seeded ones)."""
    rows = s.exec(
        select(Job).where(col(Job.created_at) >= start).order_by(col(Job.created_at))
    ).all()
    return [
        JobRow(
            j.id,
            j.user_id,
            j.tier,
            j.lane,
            j.status,
            j.error_code,
            _secs(j.created_at, start) or 0.0,
            _secs(j.started_at, start),
            _secs(j.finished_at, start),
        )
        for j in rows
    ]


def _steps(s: Session, start: datetime) -> list[SurgeStep]:
    rows = s.exec(
        select(AuditEntry)
        .where(AuditEntry.actor == "auto", AuditEntry.action == "surge")
        .order_by(col(AuditEntry.id))
    ).all()
    return [SurgeStep(_secs(a.created_at, start) or 0.0, int(a.before), int(a.after)) for a in rows]  # type: ignore[arg-type]


def collect(day: ViralDay, start: datetime, wall_s: float) -> DayResult:
    with transaction(day.rt.engine) as s:
        return DayResult(
            config=day.config,
            settings=day.rt.settings,
            tiers=day.rt.tiers,
            start=start,
            people=day.people,
            sent=day.sent,
            taken=day.taken,
            jobs=_jobs(s, start),
            offers=[(o.id, o.user_id, o.job_id) for o in s.exec(select(Offer)).all()],
            steps=_steps(s, start),
            usage=[(u.user_id, u.day, u.used) for u in s.exec(select(Usage)).all()],
            ledger=[(e.job_id, e.user_id, e.kind) for e in s.exec(select(LedgerEntry)).all()],
            in_flight={u.id: u.in_flight for u in s.exec(select(User)).all()},
            rejections=Counter(
                (r.tier, r.reason)
                for r in s.exec(select(Rejection).where(col(Rejection.created_at) >= start)).all()
            ),
            pattern=day_pattern(s, start).by_hour,
            final_level=surge_level(s),
            end_s=day.clock.t,
            wall_s=wall_s,
        )


# --- the summary ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)] if ranked else 0.0


def mmss(seconds: float) -> str:
    """'9:59', or from an hour on '1:01:35'."""
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


HEADER = (
    "tier",
    "people",
    "requests",
    "admitted",
    "busy",
    "quota",
    "in-flight",
    "p50 wait",
    "p95 wait",
    "max wait",
    "promised",
)


def _row(r: DayResult, tier: str) -> tuple[str, ...]:
    waits = [j.wait for j in r.done(tier)]
    counts = [len(r.answers(tier, o)) for o in Outcome if o != Outcome.OTHER]
    return (
        tier,
        str(sum(p.tier == tier for p in r.people)),
        str(sum(s.tier == tier for s in r.sent)),
        *map(str, counts),
        mmss(percentile(waits, 50)),
        mmss(percentile(waits, 95)),
        mmss(max(waits, default=0.0)),
        f"≤ {mmss(r.tiers[tier].max_wait_s)}",
    )


RELAX_HEADER = (
    "lane",
    "offered",
    "taken",
    "admitted",
    "done",
    "expired/cancelled",
    "told (p50)",
    "can't tell",
    "p50 to result",
    "p95 to result",
    "max to result",
    "told/actual (p50)",
    "late",
    "promised",
)
ROUNDING_S = 30.0  # the reply names whole minutes


def late(r: DayResult, e: Estimate) -> bool:
    """The result came after the time told: past its rounding and one image's service time."""
    return e.actual > e.told + ROUNDING_S + r.config.service_s


def _relax_row(r: DayResult) -> tuple[str, ...]:
    """Offers made on busy refusals, presses, jobs admitted and how they ended; times from the
    press (the job's admission) to its result, and the median estimate the reply told."""
    jobs = r.relax()
    waits = [j.wait for j in jobs if j.status == "done"]
    told = [k.eta_s for k in r.taken if k.eta_s is not None]
    estimates = r.estimates()
    unknown = sum(k.job_id is not None and k.eta_s is None for k in r.taken)
    return (
        "relax",
        str(sum(s.answer.offer_id is not None for s in r.sent)),
        str(len(r.taken)),
        str(len(jobs)),
        str(sum(j.status == "done" for j in jobs)),
        str(sum(j.status == "cancelled" or j.error == "expired" for j in jobs)),
        mmss(percentile(told, 50)) if told else "-",
        str(unknown),
        mmss(percentile(waits, 50)),
        mmss(percentile(waits, 95)),
        mmss(max(waits, default=0.0)),
        f"{percentile([e.ratio for e in estimates], 50):.2f}x" if estimates else "-",
        str(sum(late(r, e) for e in estimates)),
        f"within {r.settings.relax_ttl_hours:g} h",
    )


def _demand(r: DayResult) -> Counter[int]:
    """This day's demand per hour as the estimate counts it: normal jobs admitted, and each
    person refused as busy once per hour."""
    busy = {(s.user_id, r.hour(s.t)) for s in r.sent if s.answer.outcome == Outcome.BUSY}
    return Counter([*(r.hour(j.created) for j in r.normal()), *(h for _, h in busy)])


def _history(r: DayResult) -> str:
    days = r.config.history_days
    if not days:
        return (
            "History: none in SQL (a fresh database): past the next hour, the estimate can't tell."
        )
    hours = ", ".join(f"{h:02d}:00 {n:.0f}" for h, n in sorted(r.pattern.items()) if n) or "none"
    text = (
        f"History: {days} earlier day{'s' * (days > 1)} of the same burst in SQL; demand the "
        f"estimate reads per hour of day (mean of those days): {hours}; other hours 0. This "
        f"day: {', '.join(f'{h:02d}:00 {n}' for h, n in sorted(_demand(r).items()))}."
    )
    if estimates := r.estimates():
        ratios = sorted(e.ratio for e in estimates)
        text += (
            f" Told/actual from {ratios[0]:.2f}x to {ratios[-1]:.2f}x; {len(estimates)} "
            f"estimates, {sum(late(r, e) for e in estimates)} late (result after the time told "
            f"+ {ROUNDING_S:g} s rounding + one service time)."
        )
    return textwrap.fill(text, width=88)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


def surge_timeline(r: DayResult) -> str:
    clock = [(0.0, 0)] + [(step.t, step.after) for step in r.steps]
    return "\n".join(
        f"  {(r.start + timedelta(seconds=t)):%H:%M:%S}  level {level}  "
        f"(free limit {r.free_limit(level)}/day)"
        for t, level in clock
    )


def render(r: DayResult) -> str:
    c, s = r.config, r.settings
    surge = ", ".join(f"{k}={getattr(s, k)}" for k in c.surge)
    return "\n".join(
        [
            f"Viral day on {r.settings.sqlalchemy_url.partition(':')[0]}: "
            f"{len(r.people)} people ({', '.join(f'{n} {t}' for t, n in c.people.items())}), "
            f"{c.workers} workers x {c.service_s:g} s/image, 85% arriving within "
            f"{mmss(c.burst_s)}; capacity mode auto ({surge})",
            "",
            table([HEADER, *(_row(r, tier) for tier in TIER_NAMES)]),
            "",
            "Waits: request to result, admitted requests. busy: refused with an estimate; quota:",
            "daily limit reached; in-flight: a photo already waiting. Nothing refused was charged.",
            "",
            table([RELAX_HEADER, _relax_row(r)]),
            "",
            textwrap.fill(
                f"Relax lane: offered with each busy refusal; {LATER_SHARE:.0%} of the people "
                f"take it (at once or within {duration(LATER_PONDER_S[1])}) and wait for it. "
                "told: the median estimate the reply gave; can't tell: replies that said it "
                "can't tell yet. To result: from the press (the job's admission) to the image.",
                width=88,
            ),
            _history(r),
            "",
            "Auto surge (free daily limit):",
            surge_timeline(r),
            "",
            f"{sum(j.status == 'done' for j in r.jobs)} images made in {mmss(r.end_s)} simulated; "
            f"{r.wall_s:.1f} s of real time.",
        ]
    )
