"""The people of the viral day: who arrives when, wanting what, and how they read the replies."""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image

from bots.core.messages import t
from bots.core.requests import Reply


@dataclass(frozen=True)
class Habits:
    """How one tier's people behave."""

    wants: int  # images they would like today (free: more than their limit)
    lanes: int  # photos they keep going at once (never above the tier's in-flight cap)
    think_s: tuple[float, float]  # pause between a result and the next photo
    late_s: float  # the latest arrival, in seconds after the start


HABITS = {
    "free": Habits(wants=5, lanes=1, think_s=(10.0, 60.0), late_s=2400.0),
    "plus": Habits(wants=8, lanes=2, think_s=(20.0, 90.0), late_s=1800.0),
    "pro": Habits(wants=16, lanes=3, think_s=(10.0, 60.0), late_s=1200.0),
}
IMPATIENT_SHARE = 0.2  # free people who send a second photo while the first still waits
BURST_SHARE = 0.85  # the share of people who arrive within the burst
COME_BACK_S = 1200.0  # told the free limit is lowered "for now", a person tries again later
LATER_SHARE = 0.5  # people who take "do it when there's room" when a refusal offers it
LATER_AT_ONCE_S = (1.0, 5.0)  # half of them press the button at once...
LATER_PONDER_S = (60.0, 600.0)  # ...the others after a while (the offer holds for an hour)
STYLES = ("ghibli", "arcane")


@dataclass
class Person:
    user_id: str
    tier: str
    habits: Habits
    arrives: float  # seconds after the start
    impatient: bool
    later_after_s: float | None = None  # from a relax offer to taking it; None: never takes it
    admitted: int = 0  # requests queued for them
    received: int = 0  # results they got
    relaxed: int = 0  # relax-lane jobs admitted for them (they wait for it, sending nothing)
    relax_received: int = 0  # relax-lane results they got
    came_back: bool = False

    def wants_more(self) -> bool:
        return self.admitted + self.relaxed < self.habits.wants


def population(counts: dict[str, int], burst_s: float, rng: random.Random) -> list[Person]:
    """`counts` people per tier; most arrive within `burst_s`, the rest trickle in later."""
    people = []
    for tier, n in counts.items():
        habits = HABITS[tier]
        for i in range(n):
            late = rng.random() > BURST_SHARE
            arrives = rng.uniform(burst_s, habits.late_s) if late else rng.uniform(0, burst_s)
            impatient = tier == "free" and rng.random() < IMPATIENT_SHARE
            user_id = f"console:{tier}{i:03d}"
            people.append(Person(user_id, tier, habits, arrives, impatient, _later_after(rng)))
    return people


def _later_after(rng: random.Random) -> float | None:
    if rng.random() >= LATER_SHARE:
        return None
    return rng.uniform(*(LATER_AT_ONCE_S if rng.random() < 0.5 else LATER_PONDER_S))


class PhotoMaker:
    """Distinct tiny PNGs (64x64 noise), so no request is ever a repeat of an earlier photo."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> bytes:
        pixels = self.rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


# --- reading replies ------------------------------------------------------------------------


class Outcome(StrEnum):
    QUEUED = "queued"
    BUSY = "busy"
    QUOTA = "quota"
    IN_FLIGHT = "in_flight"
    OTHER = "other"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    wait_s: float | None = None  # busy: the wait the reply named, if it named one
    lowered: bool = False  # quota: the reply says the free limit is lowered for now
    offer_id: str | None = None  # busy: the refusal offered the relax lane (a button / /later)


def _pattern(key: str, *params: str) -> re.Pattern[str]:
    """The catalog sentence as a regex, each placeholder a capture group."""
    text = re.escape(t(key, "en", **{p: f"@@{p}@@" for p in params}))
    for p in params:
        text = text.replace(re.escape(f"@@{p}@@"), f"(?P<{p}>.+?)")
    return re.compile(text)


BUSY = _pattern("busy", "wait")
QUOTA = _pattern("quota_daily", "limit", "reset")
IN_FLIGHT = _pattern("quota_in_flight")
SURGE_NOTE = _pattern("surge_note", "limit")
LATER_QUEUED = _pattern("later_queued", "style", "eta")
LATER_UNKNOWN = _pattern("later_queued_unknown", "style", "ttl")
_UNITS = {"hour": 3600, "minute": 60}
_DURATION = re.compile(r"(\d+) (hour|minute)s?")


def parse_duration(text: str) -> float | None:
    """'1 hour and 5 minutes' -> 3900.0; None when `text` names no duration."""
    parts = _DURATION.findall(text)
    return float(sum(int(n) * _UNITS[unit] for n, unit in parts)) if parts else None


def read_reply(reply: Reply) -> Answer:
    """What a person makes of the bot's answer, from the text they received."""
    if reply.job_id is not None:
        return Answer(Outcome.QUEUED)
    if m := BUSY.match(reply.text):
        return Answer(Outcome.BUSY, wait_s=parse_duration(m["wait"]), offer_id=reply.offer_id)
    if QUOTA.match(reply.text):
        return Answer(Outcome.QUOTA, lowered=SURGE_NOTE.search(reply.text) is not None)
    if IN_FLIGHT.fullmatch(reply.text):
        return Answer(Outcome.IN_FLIGHT)
    return Answer(Outcome.OTHER)


def told_eta(reply: Reply) -> float | None:
    """The relax lane's estimate in the reply to taking an offer; None when it named none
    (admitted with "can't tell yet", or not admitted)."""
    m = LATER_QUEUED.fullmatch(reply.text)
    return parse_duration(m["eta"]) if m else None
