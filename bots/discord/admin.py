"""/admin …: the shared admin commands with typed options. Hidden from members without the
Administrator permission by default, yet only STYLEBOT_ADMINS may run them: a server's
administrators are not the bot's operators. Every refusal is audited by the core."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands

from bots.discord.catalog import text
from bots.discord.flows import Flows
from bots.discord.translate import user_id

Tier = Literal["free", "plus", "pro"]
Mode = Literal["open", "paused-free", "closed", "auto"]


class AdminGroup(app_commands.Group):
    def __init__(self, flows: Flows) -> None:
        super().__init__(
            name="admin",
            description=text("cmd_admin"),
            default_permissions=discord.Permissions(administrator=True),
        )
        self.flows = flows

    @app_commands.command(name="grant", description=text("adm_grant"))
    @app_commands.describe(user=text("opt_user"), amount=text("opt_amount"))
    async def grant(
        self, interaction: discord.Interaction, user: discord.User, amount: int
    ) -> None:
        await self.flows.run_admin(interaction, "grant", user_id(user), str(amount))

    @app_commands.command(name="setlimit", description=text("adm_setlimit"))
    @app_commands.describe(tier=text("opt_tier"), amount=text("opt_amount"))
    async def setlimit(self, interaction: discord.Interaction, tier: Tier, amount: int) -> None:
        await self.flows.run_admin(interaction, "setlimit", tier, str(amount))

    @app_commands.command(name="settier", description=text("adm_settier"))
    @app_commands.describe(user=text("opt_user"), tier=text("opt_tier"))
    async def settier(
        self, interaction: discord.Interaction, user: discord.User, tier: Tier
    ) -> None:
        await self.flows.run_admin(interaction, "settier", user_id(user), tier)

    @app_commands.command(name="ban", description=text("adm_ban"))
    @app_commands.describe(user=text("opt_user"), reason=text("opt_reason"))
    async def ban(
        self, interaction: discord.Interaction, user: discord.User, reason: str | None = None
    ) -> None:
        await self.flows.run_admin(interaction, "ban", user_id(user), *(reason or "").split())

    @app_commands.command(name="unban", description=text("adm_unban"))
    @app_commands.describe(user=text("opt_user"))
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        await self.flows.run_admin(interaction, "unban", user_id(user))

    @app_commands.command(name="capacity", description=text("adm_capacity"))
    @app_commands.describe(mode=text("opt_mode"))
    async def capacity(self, interaction: discord.Interaction, mode: Mode | None = None) -> None:
        await self.flows.run_admin(interaction, "capacity", *([mode] if mode else []))

    @app_commands.command(name="stats", description=text("adm_stats"))
    async def stats(self, interaction: discord.Interaction) -> None:
        await self.flows.run_admin(interaction, "stats")

    @app_commands.command(name="whois", description=text("adm_whois"))
    @app_commands.describe(user=text("opt_user"))
    async def whois(self, interaction: discord.Interaction, user: discord.User) -> None:
        await self.flows.run_admin(interaction, "whois", user_id(user))

    @app_commands.command(name="refund", description=text("adm_refund"))
    @app_commands.describe(charge=text("opt_charge"))
    async def refund(self, interaction: discord.Interaction, charge: str) -> None:
        await self.flows.run_admin(interaction, "refund", charge)

    @app_commands.command(name="appeals", description=text("adm_appeals"))
    async def appeals(self, interaction: discord.Interaction) -> None:
        await self.flows.run_admin(interaction, "appeals")

    @app_commands.command(name="release", description=text("adm_release"))
    @app_commands.describe(job=text("opt_job"))
    async def release(self, interaction: discord.Interaction, job: str) -> None:
        await self.flows.run_admin(interaction, "release", job)

    @app_commands.command(name="confirm", description=text("adm_confirm"))
    @app_commands.describe(job=text("opt_job"))
    async def confirm(self, interaction: discord.Interaction, job: str) -> None:
        await self.flows.run_admin(interaction, "confirm", job)
