"""Bot-token routes: who the bot is, its commands, channels, channel messages and DMs."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.discord_http import Req
from tests.e2e.discord_payloads import (
    APP_FLAGS,
    APP_ID,
    BOT_USER,
    DIRECT_MESSAGES,
    GUILD_MESSAGES,
    NONCE_WINDOW_S,
    ApiError,
    form_error,
)
from tests.e2e.discord_places import dm_channel
from tests.e2e.discord_state import DiscordState

Reply = tuple[int, Any]
MISSING_ACCESS = ApiError(403, 50001, "Missing Access")
CHAT_NAME = re.compile(r"^[-_'\w]{1,32}$")  # Discord's CHAT_INPUT name rule, roughly


class ChannelRoutes(DiscordState):
    # --- identity -----------------------------------------------------------------------------

    def r_me(self, req: Req) -> Reply:
        return 200, {**BOT_USER, "verified": True, "mfa_enabled": False, "email": None, "bio": ""}

    def r_app_info(self, req: Req) -> Reply:
        owner = {**BOT_USER, "id": "1", "username": "owner", "bot": False, "discriminator": "0"}
        return 200, {
            "id": str(APP_ID),
            "name": "Stylebot",
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot": BOT_USER,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": APP_FLAGS,
            "owner": owner,
            "team": None,
            "interactions_endpoint_url": None,  # events come over the gateway
            "integration_types_config": {"0": {}, "1": {}},
            "approximate_guild_count": len(self.bot_guilds),
            "redirect_uris": [],
            "tags": [],
        }

    def r_gateway_bot(self, req: Req) -> Reply:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        limit["remaining"] -= len(self.gateway.identifies)
        return 200, {"url": self.gateway.url, "shards": 1, "session_start_limit": limit}

    def r_gateway(self, req: Req) -> Reply:
        return 200, {"url": self.gateway.url}

    # --- application commands -----------------------------------------------------------------

    def _app(self, req: Req) -> None:
        if req.arg("application_id") != str(APP_ID):
            raise MISSING_ACCESS

    def _guild_arg(self, req: Req) -> int | None:
        if "guild_id" not in req.call.args:
            return None
        guild_id = int(req.arg("guild_id"))
        if guild_id not in self.guilds:
            raise MISSING_ACCESS
        return guild_id

    def r_get_commands(self, req: Req) -> Reply:
        self._app(req)
        guild_id = self._guild_arg(req)
        found = self.global_commands if guild_id is None else self.guild_commands.get(guild_id)
        return 200, found or []

    def r_sync_global(self, req: Req) -> Reply:
        self._app(req)
        self.global_commands = self._overwrite(req.body, self.global_commands, None)
        return 200, self.global_commands

    def r_sync_guild(self, req: Req) -> Reply:
        self._app(req)
        guild_id = self._guild_arg(req)
        assert guild_id is not None
        known = self.guild_commands.get(guild_id, [])
        self.guild_commands[guild_id] = self._overwrite(req.body, known, guild_id)
        return 200, self.guild_commands[guild_id]

    def _overwrite(
        self, sent: Any, known: list[dict[str, Any]], guild_id: int | None
    ) -> list[dict[str, Any]]:
        """A bulk overwrite: commands keep their ids by (name, type); Discord's defaults filled."""
        if not isinstance(sent, list) or len(sent) > 100:
            raise form_error("_root", "Must be a list of 100 or fewer commands.")
        ids = {(c["name"], c["type"]): c["id"] for c in known}
        keys = [(c.get("name"), int(c.get("type") or 1)) for c in sent]
        if len(set(keys)) != len(keys):
            raise ApiError(400, 50035, "Application command names must be unique")
        stored = []
        for cmd, key in zip(sent, keys, strict=True):
            check_command(cmd, key[1])
            full = {
                **{"description": "", "default_member_permissions": None, "nsfw": False},
                **{"dm_permission": True, "integration_types": [0], "contexts": None},
                **cmd,
                "type": key[1],
                "id": ids.get(key) or str(self.snowflake()),
                "application_id": str(APP_ID),
                "version": str(self.snowflake()),
            }
            if guild_id is not None:
                full["guild_id"] = str(guild_id)
            stored.append(full)
        return stored

    # --- channels and DMs ---------------------------------------------------------------------

    def _visible_channel(self, req: Req) -> dict[str, Any]:
        channel = self.channel_of(req.arg("channel_id"))
        if not self.bot_sees(channel):
            raise MISSING_ACCESS
        return channel

    def r_get_channel(self, req: Req) -> Reply:
        return 200, self._visible_channel(req)

    def r_typing(self, req: Req) -> Reply:
        self._visible_channel(req)
        return 204, None

    def r_create_dm(self, req: Req) -> Reply:
        user_id = int((req.body or {}).get("recipient_id") or 0)
        if user_id not in self.users:
            raise ApiError(404, 10013, "Unknown User")
        if user_id not in self.dms:
            channel = dm_channel(self.snowflake(), self.users[user_id])
            self.channels[int(channel["id"])] = channel
            self.dms[user_id] = int(channel["id"])
        return 200, self.channels[self.dms[user_id]]

    def r_channel_message(self, req: Req) -> Reply:
        """Honours nonce + enforce_nonce (a repeat within minutes returns the first message)."""
        channel = self._visible_channel(req)
        cid, body = int(channel["id"]), req.body or {}
        recipients = channel.get("recipients") or []
        if channel["type"] == 1 and any(int(u["id"]) in self.closed_dms for u in recipients):
            raise ApiError(403, 50007, "Cannot send messages to this user")
        nonce = body.get("nonce")
        key = (cid, str(nonce))
        if nonce is not None and body.get("enforce_nonce") and key in self.nonces:
            when, mid = self.nonces[key]
            if self.now() - when < NONCE_WINDOW_S and mid in self.messages:
                return 200, self.messages[mid]
        msg = self.new_message(channel, body, req.parts)
        if nonce is not None:
            msg["nonce"] = nonce
            self.nonces[key] = (self.now(), int(msg["id"]))
        self._reference(msg, body.get("message_reference"))
        self.posts[cid].append(int(msg["id"]))
        self.dispatch(
            "MESSAGE_CREATE", msg, GUILD_MESSAGES if "guild_id" in msg else DIRECT_MESSAGES
        )
        return 200, msg

    def _reference(self, msg: dict[str, Any], ref: dict[str, Any] | None) -> None:
        if not ref:
            return
        replied = self.messages.get(int(ref.get("message_id") or 0))
        if replied is None and ref.get("fail_if_not_exists", True):
            raise form_error("message_reference", "Unknown message")
        msg["type"] = 19  # REPLY
        msg["message_reference"] = {"type": 0, "channel_id": msg["channel_id"], **ref}
        msg["referenced_message"] = replied

    def _channel_message(self, req: Req) -> dict[str, Any]:
        channel = self._visible_channel(req)
        msg = self.messages.get(int(req.arg("message_id")))
        if msg is None or msg["channel_id"] != channel["id"]:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def r_get_message(self, req: Req) -> Reply:
        return 200, self._channel_message(req)

    def r_edit_message(self, req: Req) -> Reply:
        msg = self._channel_message(req)
        if not self.bot_author(msg):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self.edit_message(msg, req.body or {}, req.parts)
        return 200, msg

    def r_delete_message(self, req: Req) -> Reply:
        msg = self._channel_message(req)
        if not self.bot_author(msg):
            raise ApiError(403, 50013, "Missing Permissions")
        del self.messages[int(msg["id"])]
        return 204, None


def check_command(cmd: dict[str, Any], kind: int) -> None:
    """Discord's limits: CHAT_INPUT names (and option names) lowercase [-_\\w]{1,32} with a
    1-100 character description; context menu names 1-32 characters, no description;
    localizations alike; at most 25 options."""
    names = [cmd.get("name") or "", *(cmd.get("name_localizations") or {}).values()]
    if len(cmd.get("options") or []) > 25:
        raise form_error("options", "Must be 25 or fewer in length.")
    if kind != 1:
        if not all(1 <= len(n) <= 32 for n in names) or cmd.get("description"):
            raise form_error("name", "Context menus: a 1-32 character name, no description.")
        return
    descriptions = [cmd.get("description") or ""]
    descriptions += list((cmd.get("description_localizations") or {}).values())
    if not all(CHAT_NAME.match(n) and n == n.lower() for n in names):
        raise form_error("name", f"Invalid command name in {names!r}")
    if not all(1 <= len(d) <= 100 for d in descriptions):
        raise form_error("description", "Must be between 1 and 100 in length.")
    for option in cmd.get("options") or []:
        check_command(option, 1)
