"""Pure translation rules between Telegram's values and the core's: no I/O, no SDK calls."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from telegram import Document, Message, PhotoSize, User

from bots.core import ReplyTarget, Sender
from tasks.styles import StylePreset

PLATFORM = "telegram"
# getFile on the public Bot API serves files up to 20 MB; a --local Bot API server lifts it.
PUBLIC_DOWNLOAD_LIMIT_MB = 20.0
# Uncompressed images sent "as a file": what the core's decoder accepts, nothing else.
DOCUMENT_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif"}
)
CALLBACK_PREFIX = "style:"  # callback_data of the style keyboard: "style:ghibli"

_WORD = re.compile(r"[/#@]?\w+(?:@\w+)?")


@dataclass(frozen=True)
class ImageRef:
    """A photo or image document by file_id (never its URL, which embeds the bot token)."""

    file_id: str
    size: int | None  # bytes, as Telegram declares it before any download


def user_id(user: User) -> str:
    return f"{PLATFORM}:{user.id}"


def sender_of(user: User) -> Sender:
    return Sender(user_id=user_id(user), username=user.username, locale=user.language_code or "en")


def idempotency_key(chat_id: int, message_id: int) -> str:
    """One key per message: the same update delivered twice maps to one job."""
    return f"{PLATFORM}:{chat_id}:{message_id}"


def target_of(message: Message) -> ReplyTarget:
    """Answer as a reply to `message`, in its forum topic when it has one."""
    thread = message.message_thread_id if message.is_topic_message else None
    return ReplyTarget(
        PLATFORM,
        chat_id=str(message.chat.id),
        message_id=str(message.message_id),
        thread_id=str(thread) if thread is not None else None,
    )


def download_limit(max_upload_mb: float, local_mode: bool) -> float:
    """Megabytes the bot may download: the configured limit, capped by the public Bot API."""
    return max_upload_mb if local_mode else min(max_upload_mb, PUBLIC_DOWNLOAD_LIMIT_MB)


def pick_photo(sizes: Sequence[PhotoSize], limit_bytes: int) -> PhotoSize | None:
    """The largest size that fits under the limit (an unknown size is taken to fit);
    the smallest one when none fits, so the size check can say why; None without sizes."""
    ordered = sorted(sizes, key=lambda p: (p.width * p.height, p.file_size or 0))
    fitting = [p for p in ordered if p.file_size is None or p.file_size <= limit_bytes]
    if fitting:
        return fitting[-1]
    return ordered[0] if ordered else None


def document_is_image(document: Document) -> bool:
    return (document.mime_type or "").lower() in DOCUMENT_TYPES


def image_of(message: Message, limit_bytes: int) -> ImageRef | Document | None:
    """The image a message carries; a document that is not an allowed image comes back as is."""
    if message.photo:
        photo = pick_photo(message.photo, limit_bytes)
        return ImageRef(photo.file_id, photo.file_size) if photo else None
    if message.document is not None:
        doc = message.document
        return ImageRef(doc.file_id, doc.file_size) if document_is_image(doc) else doc
    return None


def _style_names(styles: Mapping[str, StylePreset]) -> dict[str, str]:
    """Every word that names a style: its command name and its display name in each language."""
    names = {name: name for name in styles}
    for preset in styles.values():
        for shown in preset.display.values():
            names.setdefault(shown.casefold(), preset.name)
    return names


def style_from_text(
    text: str | None, styles: Mapping[str, StylePreset], bot_username: str | None
) -> str | None:
    """The first style a caption names: "ghibli", "/ghibli", "/Ghibli@ThisBot", "#ghibli",
    "Ghibli style please", or a translated display name. Commands for other bots don't count."""
    if not text:
        return None
    names = _style_names(styles)
    me = (bot_username or "").casefold()
    for word in _WORD.findall(text):
        if word.startswith("@"):
            continue  # a mention, not a style
        name, _, addressee = word.lstrip("/#").casefold().partition("@")
        if addressee and addressee != me:
            continue
        if name in names:
            return names[name]
    return None


def command_for_other_bot(text: str, bot_username: str | None) -> bool:
    """'/help@OtherBot': a command addressed to another bot in the same group."""
    first = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    _, at, addressee = first.partition("@")
    return bool(
        first.startswith("/") and at and addressee.casefold() != (bot_username or "").casefold()
    )


def mentions(text: str, bot_username: str | None) -> bool:
    if not bot_username:
        return False
    return re.search(rf"@{re.escape(bot_username)}\b", text, re.IGNORECASE) is not None


def addressed(*, private: bool, text: str, bot_username: str | None, replies_to_bot: bool) -> bool:
    """Whether a message is meant for the bot. In a group only commands for it, replies to its
    messages and mentions count: a busy group's photos are not requests."""
    if private or replies_to_bot or mentions(text, bot_username):
        return True
    return text.lstrip().startswith("/") and not command_for_other_bot(text, bot_username)


def callback_data(style: str) -> str:
    return f"{CALLBACK_PREFIX}{style}"  # at most 64 bytes: style names are short


def style_of_callback(data: str | None, styles: Iterable[str]) -> str | None:
    if not data or not data.startswith(CALLBACK_PREFIX):
        return None
    style = data.removeprefix(CALLBACK_PREFIX)
    return style if style in set(styles) else None
