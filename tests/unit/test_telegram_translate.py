"""The Telegram adapter's pure translation rules: no network, no database."""

from __future__ import annotations

import pytest
from telegram import Chat, Document, Message, PhotoSize, User

from bots.core.messages import t
from bots.telegram.limiter import ChatRateLimiter
from bots.telegram.memory import Expiring, FirstSight
from bots.telegram.menu import menu_commands
from bots.telegram.sender import fits_as_photo
from bots.telegram.translate import (
    addressed,
    callback_data,
    command_for_other_bot,
    document_is_image,
    download_limit,
    idempotency_key,
    image_of,
    pick_photo,
    sender_of,
    style_from_text,
    style_of_callback,
    target_of,
)
from tasks.styles import load_styles

pytestmark = pytest.mark.unit

STYLES = load_styles()
ME = "StyleBot"
MB = 1024 * 1024


@pytest.mark.parametrize(
    ("caption", "style"),
    [
        ("ghibli", "ghibli"),
        ("Ghibli style please!", "ghibli"),
        ("/arcane", "arcane"),
        ("/Arcane@StyleBot", "arcane"),
        ("#ghibli #summer", "ghibli"),
        ("@StyleBot arcane", "arcane"),
        ("جيبلي من فضلك", "ghibli"),  # the Arabic display name
        ("my cat on the sofa", None),
        ("/ghibli@OtherBot", None),  # a command for another bot
        ("", None),
        (None, None),
    ],
)
def test_style_from_caption(caption: str | None, style: str | None) -> None:
    assert style_from_text(caption, STYLES, ME) == style


def test_first_named_style_wins() -> None:
    assert style_from_text("arcane or ghibli?", STYLES, ME) == "arcane"


@pytest.mark.parametrize(
    ("private", "text", "replies_to_bot", "expected"),
    [
        (True, "", False, True),  # a private chat: everything is for the bot
        (False, "", False, False),  # a group photo without a word
        (False, "look at this", False, False),
        (False, "/ghibli", False, True),
        (False, "/ghibli@StyleBot", False, True),
        (False, "/ghibli@OtherBot", False, False),
        (False, "hey @stylebot make it arcane", False, True),  # mentions ignore case
        (False, "hey @stylebot_fan", False, False),
        (False, "", True, True),  # a reply to one of the bot's messages
    ],
)
def test_group_addressing(private: bool, text: str, replies_to_bot: bool, expected: bool) -> None:
    got = addressed(private=private, text=text, bot_username=ME, replies_to_bot=replies_to_bot)
    assert got is expected


def test_commands_for_other_bots() -> None:
    assert command_for_other_bot("/help@OtherBot", ME)
    assert not command_for_other_bot("/help@stylebot", ME)
    assert not command_for_other_bot("/help", ME)
    assert not command_for_other_bot("mail me at a@b.c", ME)


def test_idempotency_key_is_chat_and_message() -> None:
    assert idempotency_key(-100123, 42) == "telegram:-100123:42"
    assert idempotency_key(5, 42) != idempotency_key(6, 42)


def _size(side: int, size: int | None) -> PhotoSize:
    return PhotoSize(f"f{side}", f"u{side}", side, side, file_size=size)


def test_the_largest_photo_size_under_the_limit() -> None:
    sizes = [_size(90, 2_000), _size(1280, 900_000), _size(320, 30_000), _size(9000, 25 * MB)]
    assert pick_photo(sizes, 20 * MB).file_id == "f1280"  # type: ignore[union-attr]
    assert pick_photo(sizes, 100 * MB).file_id == "f9000"  # type: ignore[union-attr]
    assert pick_photo(sizes, 1_000).file_id == "f90"  # type: ignore[union-attr]  # none fits
    assert pick_photo([_size(90, None)], 1).file_id == "f90"  # type: ignore[union-attr]
    assert pick_photo([], 20 * MB) is None


def test_download_limit_public_api_and_local_server() -> None:
    assert download_limit(50.0, local_mode=False) == 20.0
    assert download_limit(10.0, local_mode=False) == 10.0
    assert download_limit(500.0, local_mode=True) == 500.0


@pytest.mark.parametrize(
    ("mime", "ok"),
    [
        ("image/jpeg", True),
        ("image/png", True),
        ("image/webp", True),
        ("IMAGE/PNG", True),
        ("application/pdf", False),
        ("image/gif", False),
        ("image/heic", True),
        ("image/heif", True),
        ("image/avif", True),
        ("image/tiff", False),
        ("image/svg+xml", False),
        (None, False),
    ],
)
def test_document_mime_allow_list(mime: str | None, ok: bool) -> None:
    assert document_is_image(Document("d", "u", mime_type=mime)) is ok


def _message(chat: Chat, **content: object) -> Message:
    sender = User(7, False, "Ann", username="ann", language_code="ar-SA")
    return Message(42, None, chat, from_user=sender, **content)  # type: ignore[arg-type]


def test_image_of_a_message() -> None:
    chat = Chat(7, "private")
    photo = _message(chat, photo=(_size(90, 10), _size(800, 1000)))
    assert image_of(photo, MB).file_id == "f800"  # type: ignore[union-attr]
    pdf = Document("d", "u", mime_type="application/pdf", file_size=5)
    assert image_of(_message(chat, document=pdf), MB) == pdf  # refused as it is
    png = Document("p", "u", mime_type="image/png", file_size=5)
    assert image_of(_message(chat, document=png), MB).file_id == "p"  # type: ignore[union-attr]
    assert image_of(_message(chat, text="hi"), MB) is None


def test_sender_and_target() -> None:
    message = _message(Chat(-1001, "supergroup", is_forum=True), message_thread_id=9)
    sender = sender_of(message.from_user)  # type: ignore[arg-type]
    assert (sender.user_id, sender.username, sender.locale) == ("telegram:7", "ann", "ar")
    assert target_of(message).chat_id == "-1001" and target_of(message).message_id == "42"
    assert target_of(message).thread_id is None  # not a topic message
    topic = _message(Chat(-1001, "supergroup"), message_thread_id=9, is_topic_message=True)
    assert target_of(topic).thread_id == "9"


def test_callback_data_round_trip() -> None:
    assert style_of_callback(callback_data("ghibli"), STYLES) == "ghibli"
    assert style_of_callback("style:nope", STYLES) is None
    assert style_of_callback("other:ghibli", STYLES) is None
    assert all(len(callback_data(name).encode()) <= 64 for name in STYLES)


@pytest.mark.parametrize(
    ("size", "width", "height", "ok"),
    [
        (2 * MB, 2048, 1536, True),
        (11 * MB, 2048, 1536, False),  # over sendPhoto's 10 MB
        (MB, 6000, 5000, False),  # width + height over 10000
        (MB, 4000, 150, False),  # more than 20:1
    ],
)
def test_photo_or_document(size: int, width: int, height: int, ok: bool) -> None:
    assert fits_as_photo(size, width, height) is ok


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_menu_commands_come_from_the_catalog(locale: str) -> None:
    commands = menu_commands(STYLES, locale)
    names = [c.command for c in commands]
    assert names[:7] == ["start", "help", "styles", "quota", "cancel", "results", "forget"]
    assert set(STYLES) <= set(names) and len(names) <= 100
    assert commands[3].description == t("cmd_quota", locale)
    assert all(1 <= len(c.description) <= 256 for c in commands)


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_the_menu_shows_buy_paysupport_and_terms_only_while_selling(locale: str) -> None:
    selling = [c.command for c in menu_commands(STYLES, locale, selling=True)]
    not_selling = [c.command for c in menu_commands(STYLES, locale)]
    assert {"buy", "paysupport", "terms"} <= set(selling)
    assert not {"buy", "paysupport", "terms"} & set(not_selling)
    assert set(selling) - set(not_selling) == {"buy", "paysupport", "terms"}


def test_expiring_memory_forgets() -> None:
    now = [0.0]
    memory: Expiring[str, str] = Expiring(ttl_s=10, max_items=2, clock=lambda: now[0])
    memory.put("a", "ghibli")
    assert memory.get("a") == "ghibli" and "a" in memory
    now[0] = 11
    assert memory.get("a") is None
    memory.put("b", "1")
    memory.put("c", "2")
    memory.put("d", "3")
    assert len(memory) == 2 and memory.pop("b") is None and memory.pop("d") == "3"
    seen = FirstSight()
    assert seen.first("k") and not seen.first("k")


def test_private_chats_are_paced_groups_by_the_group_limiter() -> None:
    limiter = ChatRateLimiter(per_chat_rate=1.0)
    assert limiter._chat_limiter("sendMessage", {"chat_id": 5}) is not None
    assert limiter._chat_limiter("editMessageText", {"chat_id": "5"}) is not None
    assert limiter._chat_limiter("sendMessage", {"chat_id": -100}) is None
    assert limiter._chat_limiter("deleteMessage", {"chat_id": 5}) is None
    assert limiter._chat_limiter("getUpdates", {}) is None
