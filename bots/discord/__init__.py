"""The Discord adapter (discord.py 2.x): translation between Discord and the core."""

from bots.discord.app import DiscordBot, DiscordOptions
from bots.discord.run import run_discord
from bots.discord.sender import DiscordSender

__all__ = ["DiscordBot", "DiscordOptions", "DiscordSender", "run_discord"]
