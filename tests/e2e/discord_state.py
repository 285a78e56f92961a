"""What the Discord emulator knows (users, guilds, channels, messages, interactions, files) and
the message building its routes share. Every method here runs under `lock`."""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.e2e.discord_gateway import Gateway
from tests.e2e.discord_http import Call, Part
from tests.e2e.discord_payloads import (
    APP_ID,
    BOT_USER,
    COMPONENTS_V2,
    CONTENT_LIMIT,
    DISCORD_EPOCH_MS,
    EPHEMERAL,
    LOADING,
    PREMIUM_BUTTON,
    SUPPRESS_EMBEDS,
    ApiError,
    attachment_payload,
    form_error,
    iso,
    message_payload,
)
from tests.e2e.discord_places import guild_create


@dataclass
class Pending:
    """An interaction the emulator dispatched, and what the bot has done with it so far."""

    payload: dict[str, Any]
    created: float  # emulator clock
    acked: dict[str, Any] | None = None  # the callback body
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    max_followups: int | None = None  # 5 for a user-installed app outside its guilds


class DiscordState:
    def __init__(self, privileged_intents: int = 0) -> None:
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.url = ""
        self.offset = 0.0  # advance() moves the emulator clock ahead of time.time()
        self.privileged_intents = privileged_intents  # those enabled "in the developer portal"
        self._last_id = 0
        self.users: dict[int, dict[str, Any]] = {}
        self.locales: dict[int, str] = {}
        self.guilds: dict[int, dict[str, Any]] = {}
        self.bot_guilds: set[int] = set()
        self.channels: dict[int, dict[str, Any]] = {}
        self.private: set[int] = set()  # DMs between people: the bot never sees into them
        self.deleted: set[int] = set()
        self.closed_dms: set[int] = set()
        self.dms: dict[int, int] = {}  # user id -> the bot's DM channel with them
        self.blobs: dict[str, bytes] = {}  # attachment id -> bytes (the CDN)
        self.messages: dict[int, dict[str, Any]] = {}
        self.posts: dict[int, list[int]] = defaultdict(list)  # channel -> bot's channel posts
        self.nonces: dict[tuple[int, str], tuple[float, int]] = {}
        self.interactions: dict[int, Pending] = {}
        self.tokens: dict[str, int] = {}  # interaction token -> interaction id
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.faults: dict[str, deque[tuple[int, float]]] = defaultdict(deque)
        self.entitlements: dict[int, dict[str, Any]] = {}  # entitlement id -> its payload
        self.consumables: set[int] = set()  # entitlements whose SKU is a consumable
        self.gateway = Gateway(self)

    # --- clock and ids ------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.offset

    def snowflake(self) -> int:
        """Increasing ids whose timestamp part is the emulator clock (snowflake_time works)."""
        with self.lock:
            stamp = (int(self.now() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last_id = max(stamp, self._last_id + 1)
            return self._last_id

    # --- lookups ------------------------------------------------------------------------------

    def channel_of(self, channel_id: int | str) -> dict[str, Any]:
        cid = int(channel_id)
        if cid not in self.channels or cid in self.deleted:
            raise ApiError(404, 10003, "Unknown Channel")
        return self.channels[cid]

    def bot_sees(self, channel: dict[str, Any]) -> bool:
        """The bot reads and posts in its guilds' channels and its own DMs, nowhere else."""
        if "guild_id" in channel:
            return int(channel["guild_id"]) in self.bot_guilds
        return int(channel["id"]) not in self.private

    def guild_payloads(self) -> list[dict[str, Any]]:
        """GUILD_CREATE payloads of the guilds the bot is a member of (for READY)."""
        return [self.guild_payload(gid) for gid in sorted(self.bot_guilds)]

    def guild_payload(self, guild_id: int) -> dict[str, Any]:
        chans = [c for c in self.channels.values() if c.get("guild_id") == str(guild_id)]
        chans = [c for c in chans if int(c["id"]) not in self.deleted]
        return guild_create(self.guilds[guild_id], chans, self.now())

    def dispatch(self, event: str, data: dict[str, Any], intent: int = 0) -> None:
        self.gateway.dispatch(event, data, intent)

    # --- files --------------------------------------------------------------------------------

    def store_file(
        self, data: bytes, filename: str, content_type: str | None, size: int | None = None
    ) -> dict[str, Any]:
        """Keep bytes on the emulated CDN; links are signed and expire a day later, as Discord's
        do (ex = expiry, is = issued, hm = signature)."""
        assert self.url, "start() the emulator first: links point at its address"
        att_id, now = self.snowflake(), self.now()
        self.blobs[str(att_id)] = data
        sign = f"ex={int(now + 86400):x}&is={int(now):x}&hm={secrets.token_hex(32)}"
        url = f"{self.url}/attachments/{att_id}/{quote(filename)}?{sign}&"
        return attachment_payload(att_id, filename, data, url, content_type, size)

    def _attachments(
        self, body: dict[str, Any], parts: list[Part], keep: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """`attachments` lists the existing ones to keep ({"id": snowflake}) and describes new
        uploads ({"id": n} for the part files[n]); without it, uploads are added to the kept."""
        uploads = {p.index: p for p in parts}
        existing = {a["id"]: a for a in keep}
        if "attachments" not in body:
            news = [self._upload(p, {}) for p in parts]
            return [*keep, *news]
        result: list[dict[str, Any]] = []
        for entry in body.get("attachments") or []:
            ref = str(entry.get("id"))
            if ref in existing:
                result.append(existing[ref])
            elif ref.isdigit() and int(ref) in uploads:
                result.append(self._upload(uploads.pop(int(ref)), entry))
            else:
                raise form_error("attachments", f"Unknown attachment id {ref}")
        return result + [self._upload(p, {}) for p in uploads.values()]

    def _upload(self, part: Part, entry: dict[str, Any]) -> dict[str, Any]:
        guessed = part.content_type if part.content_type != "application/octet-stream" else None
        att = self.store_file(part.data, entry.get("filename") or part.filename, guessed)
        if entry.get("description"):
            att["description"] = entry["description"]
        return att

    # --- messages -----------------------------------------------------------------------------

    def new_message(
        self,
        channel: dict[str, Any],
        body: dict[str, Any],
        parts: list[Part],
        *,
        flags: int = 0,
        msg_type: int = 0,
    ) -> dict[str, Any]:
        """A message the bot sends: checked like Discord checks it, then stored."""
        check_content(body, parts)
        msg = message_payload(self.snowflake(), channel, BOT_USER, self.now(), msg_type=msg_type)
        self.fill(msg, body, parts, flags)
        self.messages[int(msg["id"])] = msg
        return msg

    def fill(
        self, msg: dict[str, Any], body: dict[str, Any], parts: list[Part], flags: int
    ) -> None:
        """Apply a send's or an edit's fields. An edit only toggles SUPPRESS_EMBEDS/COMPONENTS_V2;
        EPHEMERAL stays what the message was created with; filling clears LOADING."""
        if "content" in body:
            msg["content"] = body["content"] or ""
        for key in ("embeds", "components"):
            if key in body:
                msg[key] = body[key] or []
        msg["attachments"] = self._attachments(body, parts, msg.get("attachments", []))
        if flags & EPHEMERAL:
            for att in msg["attachments"]:
                att["ephemeral"] = True
        editable = SUPPRESS_EMBEDS | COMPONENTS_V2
        msg["flags"] = (flags & ~editable & ~LOADING) | (int(body.get("flags") or 0) & editable)

    def edit_message(self, msg: dict[str, Any], body: dict[str, Any], parts: list[Part]) -> None:
        check_content(body, parts, editing=True)
        was_loading = msg["flags"] & LOADING
        self.fill(msg, body, parts, msg["flags"])
        if not was_loading:  # filling a deferred response isn't an edit
            msg["edited_timestamp"] = iso(self.now())

    def bot_author(self, msg: dict[str, Any]) -> bool:
        return str(msg["author"]["id"]) == str(APP_ID)


def check_content(body: dict[str, Any], parts: list[Part], editing: bool = False) -> None:
    """Discord refuses empty messages, over-long content and malformed component rows."""
    content = body.get("content") or ""
    if len(content) > CONTENT_LIMIT:
        raise form_error("content", f"Must be {CONTENT_LIMIT} or fewer in length.")
    has_any = content or body.get("embeds") or body.get("components") or body.get("poll")
    if not editing and not has_any and not parts and not body.get("attachments"):
        raise ApiError(400, 50006, "Cannot send an empty message")
    rows = body.get("components") or []
    flags = int(body.get("flags") or 0)
    if not flags & COMPONENTS_V2 and len(rows) > 5:
        raise form_error("components", "Must be 5 or fewer in length.")
    for row in rows:
        if row.get("type") == 1 and len(row.get("components") or []) > 5:
            raise form_error("components", "An action row holds 5 or fewer components.")
        for item in row.get("components", []) if row.get("type") == 1 else []:
            if len(str(item.get("custom_id", ""))) > 100:
                raise form_error("components", "custom_id must be 100 or fewer in length.")
            check_button(item)


def check_button(item: dict[str, Any]) -> None:
    """A premium button (style 6) is its SKU alone: Discord draws its label and price, so it
    takes no custom_id, label, emoji or url; every other style has no sku_id."""
    if item.get("type") != 2:
        return
    if item.get("style") != PREMIUM_BUTTON:
        if item.get("sku_id"):
            raise form_error("components", "sku_id is only for a premium button.")
        return
    if not str(item.get("sku_id") or "").isdigit():
        raise form_error("components", "A premium button needs a sku_id.")
    extra = {"custom_id", "label", "emoji", "url"} & set(item)
    if extra:
        raise form_error("components", f"A premium button takes no {', '.join(sorted(extra))}.")
