"""A short reading of a load run's figures, generated from them (so it can't drift from them)."""

from __future__ import annotations

from bench.load_count import CLOSE_S
from bench.load_render import PER_BOT_LIMIT, dur
from bench.load_report import LoadReport
from bench.report import percentile


def reading(r: LoadReport) -> list[str]:
    """Paragraphs (with a blank line between them) on what the figures mean."""
    parts = [_capacity(r), _first_reply(r), _limits(r), _loop(r), _log(r), _verdict(r)]
    out: list[str] = []
    for text in (p for p in parts if p):
        out += [text, ""]
    return out


def _capacity(r: LoadReport) -> str:
    k, s = r.answers.kinds, r.setup
    done, charged = r.jobs.by_status["done"], r.quota.charged
    quota = k["quota: daily limit"] + k["quota: one at a time"]
    return (
        f"**What happened.** {r.offered_per_s:.1f} requests/s arrived for {s.capacity_per_s:g}"
        f" images/s of workers. {k['queued']} requests were queued, {k['busy']} refused as busy"
        f" (the wait would have passed the tier's longest), {quota} stopped by a quota (daily"
        f" limit or one image at a time), {k['refused: not a usable image']} refused as no"
        f" usable image, and {k['earlier result sent again']} answered with an earlier result;"
        f" {done} images were made and {charged} charged."
    )


def _first_reply(r: LoadReport) -> str:
    first, waits = r.spread(r.answers.first_ms), r.bot.waits_ms.get("sendMessage", [])
    submit = r.spread(r.bot.submit_ms)
    if first is None or submit is None or not waits:
        return ""
    wait50, wait99 = percentile(waits, 50), percentile(waits, 99)
    text = (
        f"**Time to the first reply** was {dur(first.p50)} at p50 and {dur(first.p99)} at p99."
        f" `Core.submit` (admission, SQL, the download, the publish) took {dur(submit.p50)} at"
        f" p50 and {dur(submit.p99)} at p99; a text reply then waited {dur(wait50)} at p50 and"
        f" {dur(wait99)} at p99 in the bot's flood-limit rate limiter before it was sent."
    )
    if wait50 > first.p50 / 2:
        edits = r.rates.by_method["editMessageText"]
        text += (
            " So a person mostly waits for Telegram's limit, not for admission: the bot sent"
            f" {r.rates.mean_per_s:.1f} messages/s while people were sending (it allows itself"
            f" {PER_BOT_LIMIT}/s); every request needs an answer, and results and status edits"
            f" ({edits} of the {r.rates.sent} messages) draw on the same budget in no particular"
            " order, so the answers queue for seconds."
        )
    return text


def _limits(r: LoadReport) -> str:
    rates, texts = r.rates, []
    if rates.peak_overall > PER_BOT_LIMIT:
        texts.append(
            f"**Telegram's limits.** The most messages in any one second was"
            f" {rates.peak_overall}, {rates.peak_at - r.started:.1f} s after the first send."
            f" python-telegram-bot's AIORateLimiter (30 per second) is a leaky bucket holding 30:"
            f" after a quiet spell a full bucket goes at once and refills at 30/s, so up to about"
            f" {2 * PER_BOT_LIMIT} can go within one second; Telegram may answer that with 429."
        )
    if rates.chats_close:
        closest = 1000 * (rates.closest_s or 0)
        texts.append(
            f"{rates.chats_close} private chat{'s' if rates.chats_close != 1 else ''} got two"
            f" messages under {1000 * CLOSE_S:.0f} ms"
            f" apart (closest {closest:.0f} ms), against a pace of one a second per chat:"
            " ChatRateLimiter (bots/telegram/limiter.py) spaces a chat's messages as they enter"
            " it, before they wait for the bot-wide limit, so two that queue a second apart can"
            " leave that wait together."
        )
    elif rates.chats_over:
        texts.append(
            f"{rates.chats_over} chat{'s' if rates.chats_over != 1 else ''} got two messages"
            " within a second, none closer than"
            f" {1000 * CLOSE_S:.0f} ms: paced at one a second, one of the two took longer on"
            " the way to the emulator."
        )
    return " ".join(texts)


def _loop(r: LoadReport) -> str:
    lag = r.spread(r.bot.lags_ms)
    if lag is None:
        return ""
    return (
        f"**The bot's event loop** woke up {dur(lag.p50)} late at p50, {dur(lag.p99)} at p99"
        f" and {dur(lag.max)} at worst while taking in {r.taken_per_s:.1f} updates/s; a late"
        " wake-up delays every handler, send and poll on that loop alike."
    )


def _log(r: LoadReport) -> str:
    if not r.bot.log:
        return ""
    total = sum(n for _, n in r.bot.log)
    top = "; ".join(f"{n} × `{line}`" for line, n in r.bot.log[:3])
    return f"**The bot's log** had {total} warnings and errors: {top}."


def _verdict(r: LoadReport) -> str:
    bad = [f"{label}: {n}" for label, n in r.checks() if n]
    if bad:
        return "**Checks failed** — " + "; ".join(bad) + "."
    return (
        f"**Nothing lost, duplicated or over-granted**: every request got an answer, every job"
        f" its one result, no user was charged past the day's limit, and the queue was empty"
        f" {r.drain_s:.0f} s after the last send."
    )
