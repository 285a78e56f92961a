"""The table `stylebot bench load` prints and its BENCHMARKS.md section: setup, the table, the
CPU line, and a reading of the figures generated from them (bench.load_reading)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.load_bot import PROBE_S
from bench.load_count import CLOSE_S
from bench.load_report import CHECKOUT_NOTE, SECTION_TITLE, LoadReport
from bench.report import Spread, table

PER_BOT_LIMIT = 30  # Telegram: about 30 messages a second per bot ...
PER_CHAT_LIMIT = 1  # ... and about one a second into one private chat
WAIT_METHODS = ("sendMessage", "editMessageText", "sendPhoto")


def dur(value_ms: float) -> str:
    """A duration as the table shows it: "12.3 ms", or "4.74 s" from a second up."""
    return f"{value_ms:.1f} ms" if value_ms < 1000 else f"{value_ms / 1000:.2f} s"


def spread(s: Spread | None, with_max: bool = True) -> str:
    if s is None:
        return "no samples"
    return " / ".join(dur(v) for v in ((s.p50, s.p99, s.max) if with_max else (s.p50, s.p99)))


def _verdict(ok: bool, good: str = "PASS", bad: str = "FAIL") -> str:
    return good if ok else bad


def _per_chat_verdict(r: LoadReport) -> str:
    if r.rates.peak_chat <= PER_CHAT_LIMIT:
        return "within"
    return "OVER" if r.rates.chats_close else f"within ±{100 * (1 - CLOSE_S):.0f} %"


def _waits(r: LoadReport) -> str:
    found = [(m, r.spread(r.bot.waits_ms.get(m, []))) for m in WAIT_METHODS]
    return "; ".join(f"{m} {spread(s, with_max=False)}" for m, s in found if s is not None)


def figures_table(r: LoadReport) -> list[str]:
    a, rates = r.answers, r.rates
    kinds = ", ".join(f"{k} {n}" for k, n in a.kinds.most_common()) or "none"
    closest = f"; closest two {1000 * rates.closest_s:.0f} ms apart" if rates.closest_s else ""
    rows = [
        ["requests sent", f"{r.requests} in {r.span_s:.1f} s: {r.offered_per_s:.1f}/s"
         f" (+ {r.redelivered} updates delivered twice)", "—", "—"],
        ["updates taken in by the bot (getUpdates)", f"{r.taken_per_s:.1f}/s", "—", "—"],
        ["first reply after injection: p50 / p99 / max", spread(r.spread(a.first_ms)), "—", "—"],
        ["first replies, by kind", kinds, "—", "—"],
        ["in the bot: `Core.submit` (admission, SQL, download, publish): p50 / p99 / max",
         spread(r.spread(r.bot.submit_ms)), "—", "—"],
        ["in the bot: wait in the flood-limit rate limiter before sending: p50 / p99",
         _waits(r) or "no samples", "—", "—"],
        [f"bot event loop lag ({1000 * PROBE_S:.0f} ms sleeps, while sending): p50 / p99 / max",
         spread(r.spread(r.bot.lags_ms)), "—", "—"],
        ["messages sent or edited: most in any 1 s, all chats",
         f"{rates.peak_overall} ({rates.sent} in all)", f"≤ {PER_BOT_LIMIT}",
         _verdict(rates.peak_overall <= PER_BOT_LIMIT, "within", "OVER")],
        ["messages into one chat: most in any 1 s",
         f"{rates.peak_chat} ({_chats(rates.chats_over)} got 2 within 1 s, {rates.chats_close} of"
         f" them under {1000 * CLOSE_S:.0f} ms apart{closest})", f"≤ {PER_CHAT_LIMIT}",
         _per_chat_verdict(r)],
        ["jobs done / failed; results sent (earlier results included); images charged",
         f"{r.jobs.by_status['done']} / {r.jobs.by_status['failed']}; {a.results};"
         f" {r.quota.charged}", "—", "—"],
        ["status messages left standing after the result", str(a.statuses_left), "—", "—"],
        ["**lost requests** (no reply at all / admitted, no result)",
         f"{r.lost} ({a.no_reply} / {a.no_result})", "0", _verdict(r.lost == 0)],
        ["**duplicated replies** (two results, or two first replies)", str(a.duplicated), "0",
         _verdict(a.duplicated == 0)],
        ["**users over-granted quota** (ledger or counter over the day's limit)",
         str(len(r.quota.over_granted)), "0", _verdict(not r.quota.over_granted)],
        [f"**jobs never finished** (queued or running after {r.drain_s:.0f} s of draining)",
         str(r.jobs.unfinished), "0", _verdict(r.jobs.unfinished == 0)],
    ]  # fmt: skip
    return table(["figure", "measured", "limit", "result"], rows)


def setup_line(r: LoadReport) -> str:
    s = r.setup
    tiers = ", ".join(f"{n} {tier}" for tier, n in s.tiers)
    free, plus, pro = s.max_wait_s
    return (
        f"{s.people} people ({tiers}) send photos for {s.seconds:g} s (some the same photo"
        " again, some a PDF, an empty file or a corrupt JPEG, some updates delivered twice)"
        " through the Bot API emulator of tests/e2e, in a process of its own, to the real"
        " `TelegramBot` (long polling, production pacing) with PostgreSQL, Redis and one"
        f" `stylebot worker --concurrency {s.workers}` running the sleep backend ({s.service_ms} ms"
        f" per image, one image per call: {s.capacity_per_s:g} images/s in all). Tiers are set in"
        " SQL before the run; daily limits and in-flight caps as shipped; longest fair wait free"
        f" {free} s, plus {plus} s, pro {pro} s (shipped: 600/1200/1800 s), so that the queue and"
        f" the drain stay short. Plan seed {s.seed}. Times are stamped where the emulator receives"
        " each call."
    )


def cpu_line(r: LoadReport) -> str:
    c = r.bot.cpu
    if c is None:
        return ""
    cores = c.wall_s * c.cpus
    parts = [
        f"the bot's process {100 * c.bench_s / cores:.0f} %",
        f"people + emulator {100 * r.people_cpu_s / cores:.0f} %",
        f"worker {100 * c.worker_s / cores:.0f} %",
        f"PostgreSQL {100 * c.postgres_s / cores:.0f} %",
        f"Redis {100 * c.redis_s / cores:.0f} %",
    ]
    if c.machine_s is not None:
        others = c.machine_s - c.system_s - c.bench_s - r.people_cpu_s
        parts.append(f"everything else on this machine {100 * max(0.0, others) / cores:.0f} %")
    return f"CPU from the first send to the end of the drain, share of all {c.cpus} CPUs: " + (
        ", ".join(parts) + "."
    )


def render(r: LoadReport, reading: Sequence[str] = ()) -> str:
    """The BENCHMARKS.md section (title included): setup, the table, CPU, and a reading."""
    out = [
        SECTION_TITLE,
        "",
        f"`{r.command}` — measured {r.when:%Y-%m-%d %H:%M} UTC on {r.machine.line()}."
        f" {CHECKOUT_NOTE}",
        "",
        setup_line(r),
        "",
        *figures_table(r),
        "",
        cpu_line(r),
        "",
        *reading,
    ]
    return "\n".join(out).rstrip("\n") + "\n"


def _chats(n: int) -> str:
    return f"{n} chat" if n == 1 else f"{n} chats"
