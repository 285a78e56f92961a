"""The test controls of the Discord emulator: people, guilds, channels, uploads and posts to
set the scene, faults and the clock, and the reads of what the bot did. Any thread may call
these; they take the emulator's lock and copy what they hand out."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tests.e2e.discord_http import Call
from tests.e2e.discord_payloads import (
    APP_ID,
    BOT_USER,
    DIRECT_MESSAGES,
    GUILD_MESSAGES,
    mentioned_ids,
    message_payload,
    user_payload,
)
from tests.e2e.discord_places import dm_channel, text_channel, thread_channel
from tests.e2e.discord_state import DiscordState

ChannelKind = Literal["text", "thread", "dm", "private"]


class Controls(DiscordState):
    # --- test controls (any thread) -----------------------------------------------------------

    def fail(self, route: str, status: int, times: int = 1, retry_after: float = 0.2) -> None:
        """The next `times` calls of `route` answer `status` (a 429 carries retry_after)."""
        with self.lock:
            self.faults[route].extend([(status, retry_after)] * times)

    def advance(self, seconds: float) -> None:
        """Move the emulator clock (interaction deadlines, token and link expiry, snowflakes)."""
        with self.lock:
            self.offset += seconds

    def user(self, user_id: int, name: str | None = None, locale: str = "en-US") -> dict[str, Any]:
        with self.lock:
            self.users[user_id] = user_payload(user_id, name or f"user{user_id}")
            self.locales[user_id] = locale
            return copy.deepcopy(self.users[user_id])

    def guild(
        self, guild_id: int, *, bot_member: bool = True, name: str = "", locale: str = "en-US"
    ) -> dict[str, Any]:
        """bot_member=False: the app is only user-installed there; its bot sees nothing."""
        with self.lock:
            stub = {"id": str(guild_id), "name": name or f"Guild {guild_id}", "icon": None}
            self.guilds[guild_id] = {**stub, "preferred_locale": locale, "features": []}
            if bot_member:
                self.bot_guilds.add(guild_id)
        if bot_member:
            self.dispatch("GUILD_CREATE", self._locked(lambda: self.guild_payload(guild_id)))
        return dict(self.guilds[guild_id])

    def channel(
        self,
        channel_id: int,
        guild_id: int | None,
        *,
        kind: ChannelKind = "text",
        name: str = "",
        parent_id: int | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """text/thread in a guild; "dm": the bot's DM with `user_id`; "private": a DM between
        people where a user-installed app is used (context 2; the bot can't post there)."""
        with self.lock:
            name = name or f"channel-{channel_id}"
            if kind == "thread":
                assert guild_id in self.guilds, "create the guild first"
                parent = parent_id or next(iter(self._texts(guild_id)), 0)
                made = thread_channel(channel_id, guild_id, parent, name, self.now())
            elif kind == "text":
                assert guild_id in self.guilds, "create the guild first"
                made = text_channel(channel_id, guild_id, name)
            else:
                made = dm_channel(channel_id, self.users.get(user_id or 0))
                if kind == "private":
                    self.private.add(channel_id)
                elif user_id is not None:
                    self.dms[user_id] = channel_id
            self.channels[channel_id] = made
            event = "THREAD_CREATE" if kind == "thread" else "CHANNEL_CREATE"
        if guild_id in self.bot_guilds:
            self.dispatch(event, made)
        return copy.deepcopy(made)

    def _texts(self, guild_id: int) -> list[int]:
        found = self.channels.items()
        return [i for i, c in found if c.get("guild_id") == str(guild_id) and c["type"] == 0]

    def delete_channel(self, channel_id: int) -> None:
        with self.lock:
            self.deleted.add(channel_id)
            channel = self.channels[channel_id]
        if channel.get("guild_id") and int(channel["guild_id"]) in self.bot_guilds:
            self.dispatch("CHANNEL_DELETE", channel)

    def close_dms(self, user_id: int) -> None:
        """The user allows no DMs from the bot: opening one works, sending answers 50007."""
        with self.lock:
            self.closed_dms.add(user_id)

    def attachment(
        self,
        data: bytes,
        filename: str = "photo.jpg",
        content_type: str | None = "image/jpeg",
        size: int | None = None,
    ) -> dict[str, Any]:
        """A file a person uploaded; `size` makes the payload claim another size."""
        with self.lock:
            return self.store_file(data, filename, content_type, size)

    def post_message(
        self,
        channel_id: int,
        author: dict[str, Any],
        content: str = "",
        attachments: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """A message as if a person posted it; MESSAGE_CREATE reaches the bot if it can see the
        channel (without MESSAGE_CONTENT, emptied unless a DM or the bot is mentioned)."""
        with self.lock:
            channel = self.channel_of(channel_id)
            self.users.setdefault(int(author["id"]), author)
            msg = message_payload(self.snowflake(), channel, author, self.now(), content=content)
            msg["attachments"] = list(attachments)
            people = {**self.users, APP_ID: BOT_USER}
            msg["mentions"] = [people[i] for i in mentioned_ids(content) if i in people]
            self.messages[int(msg["id"])] = msg
            visible = self.bot_sees(channel)
        if visible:
            self.dispatch(
                "MESSAGE_CREATE", msg, GUILD_MESSAGES if "guild_id" in msg else DIRECT_MESSAGES
            )
        return copy.deepcopy(msg)

    def disconnect(self) -> None:
        """Drop the gateway connection(s); discord.py reconnects and RESUMEs."""
        self.gateway.disconnect()

    # --- what the bot did (any thread) --------------------------------------------------------

    def _locked(self, read: Callable[[], Any]) -> Any:
        with self.lock:
            return copy.deepcopy(read())

    def identifies(self) -> list[dict[str, Any]]:
        """IDENTIFY payloads received (intents, properties, shard...)."""
        return list(self._locked(lambda: self.gateway.identifies))

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        if guild_id is None:
            return list(self._locked(lambda: self.global_commands))
        return list(self._locked(lambda: self.guild_commands.get(guild_id, [])))

    def acknowledged(self, interaction_id: int | str) -> dict[str, Any] | None:
        found = self.interactions.get(int(interaction_id))
        return self._locked(lambda: found.acked) if found else None

    def original(self, interaction_id: int | str) -> dict[str, Any] | None:
        found = self.interactions.get(int(interaction_id))
        mid = found.original_id if found else None
        return self._locked(lambda: self.messages.get(mid or 0))

    def followups(self, interaction_id: int | str) -> list[dict[str, Any]]:
        found = self.interactions.get(int(interaction_id))
        ids = list(found.followup_ids) if found else []
        return list(self._locked(lambda: [self.messages[i] for i in ids if i in self.messages]))

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """The bot's posts (POST /channels/{id}/messages) still there, oldest first."""
        ids = list(self.posts.get(channel_id, []))
        return list(self._locked(lambda: [self.messages[i] for i in ids if i in self.messages]))

    def file_bytes(self, message: dict[str, Any], index: int = 0) -> bytes:
        return self._locked(lambda: self.blobs[message["attachments"][index]["id"]])

    def dm_channel_of(self, user_id: int) -> int | None:
        with self.lock:
            return self.dms.get(user_id)

    def calls_of(self, route: str, ok: bool | None = True, **match: Any) -> list[Call]:
        """Calls of `route`, matched on path params (channel_id=..., interaction_id=...)."""
        with self.lock:
            found = list(self.calls)
        return [
            c
            for c in found
            if c.route == route
            and (ok is None or c.ok == ok)
            and all(str(c.args.get(k, c.params.get(k))) == str(v) for k, v in match.items())
        ]

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(0.02)
        with self.lock:
            tail = [(c.route, c.status, c.args) for c in self.calls[-15:]]
        raise AssertionError(f"timed out waiting for {what or check}; last calls: {tail}")
