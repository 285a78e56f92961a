"""`stylebot bench load`: a viral minute, measured end to end through the Telegram bot.

N simulated people (bench.load_people: free, plus and pro; some sending the same photo again,
some junk, some updates delivered twice) send photos within a bounded time through the Bot API
emulator of tests/e2e, in a child process (bench.load_telegram, bench.load_drive), to the real
`TelegramBot` in this process (bench.load_bot), with a throwaway PostgreSQL database, a real
Redis broker and a real `stylebot worker` whose sleep backend takes a fixed time per image, so
that most requests must be queued or refused. After a drain it reports (bench.load_report,
bench.load_render) the intake, time to the first reply, the bot loop's lag, message rates
against Telegram's limits, and four counts that must be zero: lost requests, duplicated
replies, over-granted quota and unfinished jobs (exit status 1 otherwise).

Loopback only; stops by itself. Needs a source checkout (the emulator lives in tests/e2e).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bench.host import DEFAULT_ADMIN_URL, DEFAULT_BROKER_URL, BenchError, say
from bench.load_bot import BotThread, LogTally
from bench.load_people import Person, Send, plan
from bench.load_reading import reading
from bench.load_render import render
from bench.load_report import CHECKOUT_NOTE, SECTION_TITLE, BotSide, LoadReport, Setup, build
from bench.load_sql import job_counts, quota_check, seed_users
from bench.load_telegram import People, TelegramLog
from bench.report import write_section
from bench.stack import Stack, live_stack

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bots.telegram import TelegramOptions
    from storage.settings import Settings

TIER_NAMES = ("free", "plus", "pro")
SETTLE_S = 2.0  # after the drain, for late (duplicate) replies to show up


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="A viral minute through the Telegram bot: N people send photos through the"
        " Bot API emulator of tests/e2e to the real bot, PostgreSQL, Redis and a small pool of"
        " sleep-backend workers; prints intake, first-reply latency, loop lag, message rates and"
        " the lost/duplicated/over-granted/unfinished counts (exit 1 unless all are 0). Creates"
        " and drops a database stylebot_bench_<hex>; FLUSHES the Redis database of --redis-url."
        " Needs a source checkout.",
    )
    add = p.add_argument
    add("--people", type=int, default=1000, help="simulated people (default 1000)")
    add("--seconds", type=float, default=60.0, help="how long they keep sending (default 60)")
    add("--workers", type=int, default=2, help="worker processes (default 2)")
    add("--service-ms", type=int, default=500, help="sleep backend's time per image (500)")
    add("--max-wait-s", type=int, default=10, help="free tier's longest fair wait; plus 2x, pro 3x")
    add("--drain-s", type=float, default=60.0, help="at most this long to finish after sending")
    add("--seed", type=int, default=1, help="the plan's random seed")
    add("--database-url", default=DEFAULT_ADMIN_URL, help="PostgreSQL server (CREATE/DROP only)")
    add("--redis-url", default=DEFAULT_BROKER_URL, help="Redis broker; FLUSHED before and after")
    add("--write", action="store_true", help=f"replace '{SECTION_TITLE}' in BENCHMARKS.md")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "stylebot bench load") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(prog).parse_args(argv)
    if min(args.people, args.seconds, args.workers, args.service_ms, args.max_wait_s) <= 0:
        print(f"{prog}: --people, --seconds, --workers, --service-ms and --max-wait-s must be"
              " positive", file=sys.stderr)  # fmt: skip
        return 2
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    previous = signal.signal(signal.SIGTERM, _terminate)  # clean up on SIGTERM as on Ctrl-C
    try:
        report = run(args, " ".join([prog, *map(shlex.quote, argv)]))
    except BenchError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _show(report, args.write)


def _show(report: LoadReport, write: bool) -> int:
    section = render(report, reading(report))
    print(section)
    bad = [f"{label} {n}" for label, n in report.checks() if n]
    print("checks: " + ("FAILED: " + ", ".join(bad) if bad else "all four counts are 0"))
    for line in report.quota.over_granted[:20]:
        print(f"  over-granted: {line}")
    if write:
        print(f"wrote '{SECTION_TITLE}' to {write_section(SECTION_TITLE, section)}")
    return 1 if report.failed else 0


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _checkout() -> None:
    """Make tests.e2e importable: it is not installed with the package, only in a checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "tests" / "e2e" / "emulator.py").is_file():
        raise BenchError(
            f"no tests/e2e/emulator.py beside {Path(__file__).parent}. {CHECKOUT_NOTE}"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # `stylebot` puts its script's folder first, not the checkout
    try:
        import tests.e2e.emulator  # noqa: F401
    except ModuleNotFoundError as exc:
        raise BenchError(
            f"{exc} (the emulator needs the dev extras: pip install -e '.[dev]')"
        ) from None


def run(args: argparse.Namespace, command: str) -> LoadReport:
    _checkout()
    folks, sends = plan(args.people, args.seconds, args.seed)
    wait = args.max_wait_s
    tiers = tuple((t, sum(p.tier == t for p in folks)) for t in TIER_NAMES)
    setup = Setup(tiers, args.seconds, args.workers, args.service_ms, (wait, 2 * wait, 3 * wait),
                  args.seed)  # fmt: skip
    with live_stack(args.database_url, args.redis_url, poll_s=0.05) as stack:
        engine = stack.runtime().engine
        seed_users(engine, folks)
        say(f"bench: {len(sends)} sends from {len(folks)} people; starting {args.workers} workers")
        seen, bot, drain_s = _observe(args, stack, engine, (folks, sends))
        sql = (job_counts(engine), quota_check(engine, stack.runtime(**_limits(args)).tiers))
        return build(command, stack.machine, setup, seen, bot, sql, drain_s)


def _observe(
    args: argparse.Namespace,
    stack: Stack,
    engine: Engine,
    the_plan: tuple[list[Person], list[Send]],
) -> tuple[TelegramLog, BotSide, float]:
    """Start the workers, the people's process and the bot; send the plan; drain; stop all."""
    env = stack.env(backend="sleep", sleep_backend_ms=args.service_ms, max_batch=1,
                    batch_wait_ms=0)  # fmt: skip
    people = People(*the_plan)
    with stack.worker(engine, env, args.workers) as worker, LogTally() as tally:
        try:
            bot = BotThread(_bot_settings(stack, people.start(), args), _options())
            try:
                bot.start()
                meter = stack.cpu_meter(engine, worker)
                before = meter.sample()
                say(f"bench: sending for {args.seconds:g} s")
                people.run(args.seconds)
                say(f"bench: sent; draining (at most {args.drain_s:g} s)")
                drain_s = _drain(people, engine, args.drain_s)
                cpu = meter.between(before, meter.sample())
            finally:
                bot.stop()
            seen = people.finish()
        finally:
            people.close()
    lags = [1000 * lag for at, lag in bot.lags if seen.started <= at <= seen.finished]
    waits = {m: [1000 * w for w in ws] for m, ws in bot.timings.waits.items()}
    submit = [1000 * s for s in bot.timings.submit]
    return seen, BotSide(lags, submit, waits, cpu, tally.counts.most_common()), drain_s


def _options() -> TelegramOptions:
    from bots.telegram import TelegramOptions

    return TelegramOptions(poll_timeout_s=1.0)  # production pacing; a short poll stops sooner


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    wait = args.max_wait_s
    return {
        "free_max_wait_s": wait,
        "plus_max_wait_s": 2 * wait,
        "pro_max_wait_s": 3 * wait,
        "assumed_seconds_per_image": args.service_ms / 1000,  # until the workers have measured
    }


def _bot_settings(stack: Stack, url: str, args: argparse.Namespace) -> Settings:
    from storage.settings import Settings
    from tests.e2e.emulator import TOKEN

    return Settings(
        telegram_token=TOKEN,
        telegram_api_url=url,
        database_url=stack.db_url,
        broker_url=stack.broker_url,
        data_dir=stack.workdir / "data",
        **_limits(args),
        _env_file=None,  # type: ignore[call-arg]
    )


def _drain(people: People, engine: Engine, limit_s: float) -> float:
    """Until every job is finished and sent and every request answered (at most limit_s)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        jobs = job_counts(engine)
        if not jobs.unfinished and not jobs.undelivered and not people.unanswered():
            break
        time.sleep(0.5)
    time.sleep(SETTLE_S)
    return time.monotonic() - start


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.load"))
