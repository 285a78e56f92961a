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
    # The asker's platform-native id: whom to mention, or to write to directly, when the chat
    # itself cannot be reached.
    person: str | None = None
    # A short-lived way to answer (Discord's interaction token) and when it stops working
    # (epoch seconds); after that the reply goes to the chat, or to the person directly.
    handle: str | None = None
    handle_expires: float | None = None
    private: bool = False  # a one-to-one chat with the bot
    reachable: bool = True  # the bot may post into chat_id without the handle
    max_upload: int | None = None  # bytes a file may have there, where the platform says

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReplyTarget:
        return cls(**json.loads(text))

    def handle_alive(self, now: float, margin_s: float = 0.0) -> bool:
        """Whether the short-lived handle may still be used `margin_s` from now."""
        return bool(self.handle) and (self.handle_expires or 0.0) > now + margin_s


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
    # Where the platform keeps the photo (a Discord attachment URL), so the person can style it
    # again later without sending it anew; never a URL that embeds a bot token.
    source: str | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    image: Path | None = None
    job_id: str | None = None
    images: tuple[Path, ...] = ()  # several stored results (/results)
    style: str | None = None  # the style of the job it answers, for buttons under a result
    locale: str = "en"
    # A refusal that offers the relax lane: the adapter shows a "Do it when there's room" button
    # (catalog key later_button) whose press calls Core.accept_later with this offer id.
    offer_id: str | None = None
    # A held-back explanation: the adapter shows a review button (catalog key appeal_button,
    # data APPEAL_PREFIX + this job id) whose press calls bots.core.appeals.appeal for this job.
    appeal_job: str | None = None
