"""Platform-neutral values that cross the adapter boundary."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bots.core.messages import normalise_locale


@dataclass(frozen=True)
class ReplyTarget:
    """Where to answer: small, frozen and serialisable, so a job row can carry it."""

    platform: str  # "telegram" | "discord" | "console"
    chat_id: str
    message_id: str | None = None  # reply to this message, where the platform can
    thread_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReplyTarget:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Sender:
    """Who is asking: a platform-qualified id (telegram:123) and what the platform tells of them."""

    user_id: str
    username: str | None = None
    locale: str = "en"  # a platform language code; normalised to a catalog locale

    def __post_init__(self) -> None:
        object.__setattr__(self, "locale", normalise_locale(self.locale))

    @property
    def platform(self) -> str:
        return self.user_id.partition(":")[0]


@dataclass(frozen=True)
class ImageRequest:
    """A photo to style. `fetch` downloads the bytes only once the request is worth admitting."""

    sender: Sender
    target: ReplyTarget
    style: str
    idempotency_key: str  # the same update delivered twice carries the same key
    fetch: Callable[[], bytes]
    declared_size: int | None = None  # bytes, when the platform says so before download


@dataclass(frozen=True)
class Reply:
    text: str
    image: Path | None = None
    job_id: str | None = None
