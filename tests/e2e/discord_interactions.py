"""INTERACTION_CREATE payloads as Discord sends them: slash commands (with resolved attachments
and users, subcommands), autocomplete, message context menus, buttons and selects.

Each builder records the interaction (its token, its creation time on the emulator clock),
lists the user's active entitlements on it, dispatches it to every gateway session and returns
the payload."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any, Literal, TypedDict, Unpack

from tests.e2e.discord_entitlements import Entitlements
from tests.e2e.discord_payloads import (
    ALL_PERMISSIONS,
    APP_ID,
    BOT_PERMISSIONS,
    MEMBER_PERMISSIONS,
    UPLOAD_LIMIT,
    USER_INSTALL_FOLLOWUPS,
    USER_INSTALL_PERMISSIONS,
    member_payload,
)
from tests.e2e.discord_state import Pending

Installs = Literal["guild", "user", "both"]


class Where(TypedDict, total=False):
    """Who and where, for every builder: `locale` (default: the user's), `admin` (the member
    has ADMINISTRATOR), `installs` (which install authorizes the app: "guild", "user", both)."""

    locale: str | None
    admin: bool
    installs: Installs


class InteractionBuilders(Entitlements):
    def slash(
        self,
        name: str,
        user: dict[str, Any],
        channel_id: int,
        *,
        options: list[dict[str, Any]] | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        users: Sequence[dict[str, Any]] = (),
        subcommand: str | None = None,
        **where: Unpack[Where],
    ) -> dict[str, Any]:
        """/name with `options` ({"name", "type", "value"}); attachment and user options resolve
        from `attachments` / `users`. `subcommand` "grant" or "group grant" nests the options."""
        data = self._command_data(name, 1, channel_id, _nest(subcommand, list(options or [])))
        resolved: dict[str, Any] = {}
        if attachments:
            resolved["attachments"] = {a["id"]: a for a in attachments}
        if users:
            resolved["users"] = {u["id"]: u for u in users}
            if self._known_channel(channel_id).get("guild_id"):
                joined = self.now() - 86400
                member = member_payload(joined, MEMBER_PERMISSIONS, None)
                resolved["members"] = {u["id"]: dict(member) for u in users}
        if resolved:
            data["resolved"] = resolved
        return self._interaction(2, data, user, channel_id, **where)

    def autocomplete(
        self,
        name: str,
        user: dict[str, Any],
        channel_id: int,
        option: str,
        value: str,
        *,
        options: list[dict[str, Any]] | None = None,
        option_type: int = 3,
        subcommand: str | None = None,
        **where: Unpack[Where],
    ) -> dict[str, Any]:
        """Type 4: the user is typing `value` into `option` (focused); Discord resolves nothing."""
        focused = {"name": option, "type": option_type, "value": value, "focused": True}
        opts = _nest(subcommand, [*(options or []), focused])
        data = self._command_data(name, 1, channel_id, opts)
        return self._interaction(4, data, user, channel_id, **where)

    def context_menu(
        self,
        name: str,
        user: dict[str, Any],
        channel_id: int,
        message: dict[str, Any],
        **where: Unpack[Where],
    ) -> dict[str, Any]:
        """A MESSAGE context menu command (data.type 3) on `message`."""
        data = self._command_data(name, 3, channel_id, None)
        data["target_id"] = message["id"]
        data["resolved"] = {"messages": {message["id"]: message}}
        return self._interaction(2, data, user, channel_id, **where)

    def press(
        self,
        custom_id: str,
        user: dict[str, Any],
        channel_id: int,
        message: dict[str, Any],
        **where: Unpack[Where],
    ) -> dict[str, Any]:
        """A button (component_type 2) with `custom_id` pressed on `message`."""
        data = {"custom_id": custom_id, "component_type": 2}
        return self._interaction(3, data, user, channel_id, message, **where)

    def choose(
        self,
        custom_id: str,
        values: list[str],
        user: dict[str, Any],
        channel_id: int,
        message: dict[str, Any],
        **where: Unpack[Where],
    ) -> dict[str, Any]:
        """A string select (component_type 3) on `message` set to `values`."""
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return self._interaction(3, data, user, channel_id, message, **where)

    def redeliver(self, interaction: dict[str, Any]) -> None:
        """The same INTERACTION_CREATE again (same id and token), as a gateway hiccup might."""
        with self.lock:
            assert int(interaction["id"]) in self.interactions, (
                "not an interaction of this emulator"
            )
        self.dispatch("INTERACTION_CREATE", interaction)

    # --- building -----------------------------------------------------------------------------

    def _known_channel(self, channel_id: int) -> dict[str, Any]:
        if channel_id not in self.channels:
            raise ValueError(f"unknown channel {channel_id}: create it with channel() first")
        return self.channels[channel_id]

    def _command_data(
        self, name: str, kind: int, channel_id: int, options: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """data.id is the registered command's id; data.guild_id marks a guild command."""
        with self.lock:
            guild_id = self._known_channel(channel_id).get("guild_id")
            scoped = self.guild_commands.get(int(guild_id), []) if guild_id else []
            found = [c for c in scoped if (c["name"], c["type"]) == (name, kind)]
            if not found:
                found = [c for c in self.global_commands if (c["name"], c["type"]) == (name, kind)]
            data: dict[str, Any] = {"name": name, "type": kind}
            data["id"] = found[0]["id"] if found else str(self.snowflake())
            if found and "guild_id" in found[0]:
                data["guild_id"] = found[0]["guild_id"]
        if options is not None:
            data["options"] = options
        return data

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        user: dict[str, Any],
        channel_id: int,
        message: dict[str, Any] | None = None,
        **where: Unpack[Where],
    ) -> dict[str, Any]:
        with self.lock:
            self._known_channel(channel_id)
            uid = int(user["id"])
            self.users.setdefault(uid, user)
            iid = self.snowflake()
            token = _token(iid)
            payload: dict[str, Any] = {
                "id": str(iid),
                "application_id": str(APP_ID),
                "type": kind,
                "data": data,
                "token": token,
                "version": 1,
                "channel_id": str(channel_id),
                "locale": where.get("locale") or self.locales.get(uid, "en-US"),
                "entitlement_sku_ids": [],
                "attachment_size_limit": UPLOAD_LIMIT,
            }
            admin, installs = where.get("admin", False), where.get("installs", "guild")
            capped = self._place(payload, user, channel_id, admin, installs)
            guild_id = int(payload["guild_id"]) if "guild_id" in payload else None
            payload["entitlements"] = self.active_entitlements(uid, guild_id)
            if message is not None:
                payload["message"] = message
            self.interactions[iid] = Pending(payload, self.now())
            self.interactions[iid].max_followups = USER_INSTALL_FOLLOWUPS if capped else None
            self.tokens[token] = iid
        self.dispatch("INTERACTION_CREATE", payload)
        return payload

    def _place(
        self,
        payload: dict[str, Any],
        user: dict[str, Any],
        channel_id: int,
        admin: bool,
        installs: Installs,
    ) -> bool:
        """Fill guild/member or DM user, channel, context, owners and app_permissions; True
        when the app is there only through a user install (follow-ups are then capped)."""
        channel = self.channels[channel_id]
        guild_id = int(channel["guild_id"]) if channel.get("guild_id") else None
        owners: dict[str, str] = {}
        if installs in ("guild", "both"):
            owners["0"] = str(guild_id or 0)  # "0" for a DM with the bot
        if installs in ("user", "both"):
            owners["1"] = user["id"]
        payload["authorizing_integration_owners"] = owners
        if guild_id is None:
            private = channel_id in self.private
            payload["user"] = user
            payload["channel"] = {**channel, "recipients": [user]}
            payload["context"] = 2 if private else 1  # PRIVATE_CHANNEL / BOT_DM
            payload["app_permissions"] = USER_INSTALL_PERMISSIONS if private else BOT_PERMISSIONS
            return False  # the cap is for guilds without the bot
        guild = self.guilds[guild_id]
        member_of = guild_id in self.bot_guilds
        permissions = ALL_PERMISSIONS if admin else MEMBER_PERMISSIONS
        payload["guild_id"] = str(guild_id)
        payload["guild"] = {
            "id": str(guild_id),
            "locale": guild["preferred_locale"],
            "features": [],
        }
        payload["guild_locale"] = guild["preferred_locale"]
        payload["member"] = member_payload(self.now() - 86400, permissions, user)
        payload["channel"] = {**channel, "permissions": permissions}
        payload["context"] = 0  # GUILD
        payload["app_permissions"] = BOT_PERMISSIONS if member_of else USER_INSTALL_PERMISSIONS
        return not member_of


def _nest(subcommand: str | None, options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ "grant" -> a SUB_COMMAND (type 1) holding the options; "group grant" -> in a
    SUB_COMMAND_GROUP (type 2) too."""
    if not subcommand:
        return options
    *group, name = subcommand.split()
    nested = [{"name": name, "type": 1, "options": options}]
    return [{"name": group[0], "type": 2, "options": nested}] if group else nested


def _token(iid: int) -> str:
    """Shaped like Discord's: base64 of "interaction:<id>:<random>", URL-safe."""
    raw = f"interaction:{iid}:{secrets.token_hex(32)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
