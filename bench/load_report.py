"""The results of `stylebot bench load`: the setup, the figures (built from what the people's
process and the bot saw and what SQL holds afterwards), and the four counts that must be zero.
bench.load_render turns them into the table and the BENCHMARKS.md section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.cpu import CpuUse
from bench.host import Machine
from bench.load_count import Answers, Rates, answers, deleted, messages, rates, replies
from bench.load_sql import JobCounts, QuotaCheck
from bench.load_telegram import TelegramLog
from bench.report import Spread

SECTION_TITLE = "## Load: a viral minute through the Telegram bot"
CHECKOUT_NOTE = (
    "It drives the Bot API emulator of tests/e2e, which is not part of the installed package:"
    " run it from a source checkout (`python -m bench.load`, or `stylebot bench load` from an"
    " editable install of the checkout, which finds tests/ next to bench/)."
)


@dataclass(frozen=True)
class Setup:
    tiers: tuple[tuple[str, int], ...]  # (tier, people)
    seconds: float
    workers: int
    service_ms: int
    max_wait_s: tuple[int, int, int]  # free, plus, pro
    seed: int

    @property
    def people(self) -> int:
        return sum(n for _, n in self.tiers)

    @property
    def capacity_per_s(self) -> float:
        return self.workers * 1000 / self.service_ms


@dataclass(frozen=True)
class BotSide:
    """What the bot's own process measured."""

    lags_ms: list[float]  # the loop probe's overshoot while people were sending
    submit_ms: list[float]  # time in Core.submit, per request that reached the core
    waits_ms: Mapping[str, list[float]]  # per Bot API method: the wait in the rate limiter
    cpu: CpuUse | None  # bench_s is the bot's process
    log: Sequence[tuple[str, int]]  # warnings and errors it logged, by event


@dataclass(frozen=True)
class LoadReport:
    when: datetime
    command: str
    machine: Machine
    setup: Setup
    requests: int
    redelivered: int  # updates delivered a second time (not requests)
    span_s: float  # first to last injection
    started: float  # monotonic time of the first injection
    taken_per_s: float  # updates handed to the bot by getUpdates, per second
    behind_s: float  # the most an injection ran late
    answers: Answers
    rates: Rates
    jobs: JobCounts
    quota: QuotaCheck
    drain_s: float
    people_cpu_s: float  # the people's and the emulator's process
    bot: BotSide

    @property
    def offered_per_s(self) -> float:
        return self.requests / self.span_s if self.span_s > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.answers.no_reply + self.answers.no_result

    def spread(self, values_ms: Sequence[float]) -> Spread | None:
        return Spread.of(values_ms) if values_ms else None

    def checks(self) -> list[tuple[str, int]]:
        """The counts that must be zero."""
        return [
            ("lost requests", self.lost),
            ("duplicated replies", self.answers.duplicated),
            ("users over-granted quota", len(self.quota.over_granted)),
            ("jobs never finished", self.jobs.unfinished),
        ]

    @property
    def failed(self) -> bool:
        return any(n for _, n in self.checks())


def build(
    command: str,
    machine: Machine,
    setup: Setup,
    seen: TelegramLog,
    bot: BotSide,
    sql: tuple[JobCounts, QuotaCheck],
    drain_s: float,
) -> LoadReport:
    jobs, quota = sql
    first = seen.handed[0] if seen.handed else seen.started
    taken = len(seen.handed) / (seen.handed[-1] - first) if len(seen.handed) > 1 else 0.0
    return LoadReport(
        when=datetime.now(UTC),
        command=command,
        machine=machine,
        setup=setup,
        requests=len(seen.requests),
        redelivered=seen.redelivered,
        span_s=seen.finished - seen.started,
        started=seen.started,
        taken_per_s=taken,
        behind_s=seen.behind_s,
        answers=answers(seen.requests, replies(seen.calls), set(jobs.targets), deleted(seen.calls)),
        rates=rates(messages(seen.calls), (seen.started, seen.finished)),
        jobs=jobs,
        quota=quota,
        drain_s=drain_s,
        people_cpu_s=seen.cpu_s,
        bot=bot,
    )
