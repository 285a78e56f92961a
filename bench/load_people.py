"""Who sends what, and when, in `stylebot bench load`: a seeded plan of people (free, plus and
pro), each sending a few photos over the run, some the same photo again, some junk (a PDF, an
empty file, a corrupt JPEG), some updates delivered twice. Pure: no emulator, no bot."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

FIRST_USER_ID = 700_000_001  # Telegram user ids; a person's private chat has the same id
TIER_MIX = (("free", 0.80), ("plus", 0.15), ("pro", 0.05))
# How many times a person of each tier sends something: (count, weight) pairs.
SENDS_PER_PERSON = {
    "free": ((1, 0.60), (2, 0.25), (3, 0.10), (4, 0.05)),
    "plus": ((1, 0.40), (2, 0.30), (3, 0.20), (4, 0.10)),
    "pro": ((1, 0.30), (2, 0.30), (4, 0.20), (6, 0.20)),
}
# What a send is. The first send of a person has nothing to repeat yet.
FIRST_KINDS = (("photo", 0.92), ("pdf", 0.03), ("empty", 0.025), ("corrupt", 0.025))
LATER_KINDS = (
    ("photo", 0.70), ("same", 0.15), ("again", 0.08), ("pdf", 0.03), ("empty", 0.02),
    ("corrupt", 0.02),
)  # fmt: skip
JUNK = ("pdf", "empty", "corrupt")
CAPTIONS = ("/ghibli", "ghibli", "arcane please", "#arcane", "/arcane")
FIRST_WITHIN = 0.85  # first sends fall in the first 85 % of the run ...
GAP_S = (2.0, 12.0)  # ... later ones this long after the previous send
AGAIN_GAP_S = (0.05, 1.5)  # a re-delivered update follows its original this soon


@dataclass(frozen=True)
class Person:
    user_id: int
    tier: str


@dataclass(frozen=True)
class Send:
    """One thing a person sends at `at_s` seconds into the run.

    kind: photo (a new photo), same (the person's previous photo again, as a new message),
    again (the previous message's update delivered a second time: not a new request),
    pdf, empty (a 0-byte image file), corrupt (a JPEG that does not decode).
    """

    at_s: float
    user_id: int
    kind: str
    seed: int  # which photo (photo, same); unused for junk
    caption: str
    previous: int | None = None  # index (in the plan) of the send that `again` re-delivers

    @property
    def is_request(self) -> bool:
        return self.kind != "again"


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def people(count: int, rng: random.Random) -> list[Person]:
    return [Person(FIRST_USER_ID + i, _pick(rng, TIER_MIX)) for i in range(count)]


def plan(count: int, seconds: float, seed: int = 1) -> tuple[list[Person], list[Send]]:
    """`count` people and everything they send within `seconds`, in time order."""
    rng = random.Random(seed)
    folks = people(count, rng)
    sends: list[Send] = []
    serial = 0
    for person in folks:
        n = _pick(rng, SENDS_PER_PERSON[person.tier])
        at = rng.uniform(0, FIRST_WITHIN * seconds)
        mine: list[Send] = []
        for i in range(n):
            kind = _pick(rng, LATER_KINDS if mine else FIRST_KINDS)
            if kind == "again":
                again = mine[-1]
                when = again.at_s + rng.uniform(*AGAIN_GAP_S)
                mine.append(Send(when, person.user_id, kind, again.seed, again.caption))
                continue
            if i:
                at += rng.uniform(*GAP_S)
            photos = [s.seed for s in mine if s.kind in ("photo", "same")]
            if kind == "same" and not photos:
                kind = "photo"
            serial += 1
            chosen = photos[-1] if kind == "same" else serial
            mine.append(Send(at, person.user_id, kind, chosen, rng.choice(CAPTIONS)))
        sends += [s for s in mine if s.at_s < seconds]
    return folks, _ordered(sends)


def _ordered(sends: list[Send]) -> list[Send]:
    """In time order; each `again` points at the plan index of the send it re-delivers."""
    ordered = sorted(sends, key=lambda s: s.at_s)
    last: dict[int, int] = {}
    out: list[Send] = []
    for send in ordered:
        if send.kind == "again":
            if send.user_id not in last:
                continue  # its original fell outside the run
            send = Send(
                send.at_s, send.user_id, "again", send.seed, send.caption, last[send.user_id]
            )
        else:
            last[send.user_id] = len(out)
        out.append(send)
    return out


# --- the bytes people send --------------------------------------------------------------------


def photo_jpeg(seed: int, size: tuple[int, int] = (256, 192)) -> bytes:
    """A small photo-like JPEG whose bytes differ for every seed."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.randrange(size[0] - 40), rng.randrange(size[1] - 40)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + rng.randrange(10, 40), y + rng.randrange(10, 40)), fill=colour)
    for i in range(3):  # the seed itself, so no two seeds can come out alike
        img.putpixel((i, 0), ((seed >> (8 * i)) % 256, 255 - (seed >> (8 * i)) % 256, 128))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def junk(kind: str) -> tuple[bytes, str, str]:
    """(bytes, MIME type, file name) of a junk send."""
    if kind == "pdf":
        pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
        return pdf, "application/pdf", "holiday.pdf"
    if kind == "empty":
        return b"", "image/jpeg", "empty.jpg"
    if kind == "corrupt":
        head = photo_jpeg(0)[:200]  # a real JPEG header, then noise where the scan should be
        return head + random.Random(7).randbytes(3000), "image/jpeg", "broken.jpg"
    raise ValueError(f"not a junk kind: {kind!r}")
