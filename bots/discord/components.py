"""Buttons and selects. Each custom id carries what a press needs (the job id, the style, the
photo's declared size, the relax offer), and discord.py's dynamic items match them by pattern,
so components under old messages keep working after a restart without any view kept in memory.
Premium buttons (/buy) carry only their SKU: Discord opens its own checkout, no press reaches us."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import discord

from bots.core import APPEAL_PREFIX, LATER_PREFIX
from bots.core.messages import t
from bots.discord.translate import AGAIN, AGAIN_PICK, APPEAL, LATER, MORE, PICK
from tasks.styles import StylePreset

if TYPE_CHECKING:
    from re import Match

STYLE_BUTTONS = 4  # a row holds five: four styles and "Another style"
MAX_OPTIONS = 25  # Discord's limit for one select
MAX_BUTTONS = 25  # five rows of five: the most one message holds


class Flows(Protocol):
    async def again(self, interaction: discord.Interaction, job_id: str, style: str) -> None: ...
    async def more_styles(self, interaction: discord.Interaction, job_id: str) -> None: ...
    async def picked(self, interaction: discord.Interaction, size: int, style: str) -> None: ...
    async def later(self, interaction: discord.Interaction, offer_id: str) -> None: ...
    async def appeal(self, interaction: discord.Interaction, job_id: str) -> None: ...


def flows_of(interaction: discord.Interaction) -> Flows:
    return cast(Flows, interaction.client.flows)  # type: ignore[attr-defined]


def chosen(interaction: discord.Interaction) -> str:
    values = cast(dict[str, Any], interaction.data or {}).get("values") or [""]
    return str(values[0])


class AgainButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=AGAIN.pattern):
    """Under a result: the same photo in another style."""

    def __init__(self, job_id: str, style: str, label: str | None = None) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label or style,
            style=discord.ButtonStyle.secondary,
            custom_id=f"sb:again:{job_id}:{style}",
        )
        super().__init__(button)
        self.job_id, self.style = job_id, style

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> AgainButton:
        return cls(match["job"], match["style"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await flows_of(interaction).again(interaction, self.job_id, self.style)


class MoreButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=MORE.pattern):
    """Under a result: every style, as a select only the presser sees."""

    def __init__(self, job_id: str, label: str = "…") -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, style=discord.ButtonStyle.primary, custom_id=f"sb:more:{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> MoreButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await flows_of(interaction).more_styles(interaction, self.job_id)


def _select(
    custom_id: str, styles: Mapping[str, StylePreset], locale: str
) -> discord.ui.Select[Any]:
    options = [
        discord.SelectOption(label=preset.display_name(locale), value=name)
        for name, preset in list(styles.items())[:MAX_OPTIONS]
    ]
    return discord.ui.Select(
        custom_id=custom_id, placeholder=t("pick_style", locale), options=options
    )


class AgainSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=AGAIN_PICK.pattern):
    """The "Another style" list: the chosen style for the result's photo."""

    def __init__(self, job_id: str, select: discord.ui.Select[Any] | None = None) -> None:
        super().__init__(select or discord.ui.Select(custom_id=f"sb:againpick:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> AgainSelect:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await flows_of(interaction).again(interaction, self.job_id, chosen(interaction))


class PickSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=PICK.pattern):
    """After "Stylize image" on a message: the style for the photo shown above it."""

    def __init__(self, size: int, select: discord.ui.Select[Any] | None = None) -> None:
        super().__init__(select or discord.ui.Select(custom_id=f"sb:pick:{size}"))
        self.size = size

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> PickSelect:
        return cls(int(match["size"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await flows_of(interaction).picked(interaction, self.size, chosen(interaction))


class LaterButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=LATER.pattern):
    """Under a busy or paused refusal: "Do it when there's room" (the relax lane)."""

    def __init__(self, offer_id: str, label: str = "…") -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, style=discord.ButtonStyle.success, custom_id=f"{LATER_PREFIX}{offer_id}"
        )
        super().__init__(button)
        self.offer_id = offer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> LaterButton:
        return cls(match["offer"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await flows_of(interaction).later(interaction, self.offer_id)


class AppealButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=APPEAL.pattern):
    """Under a held-back explanation: "Ask for a review" of that job."""

    def __init__(self, job_id: str, label: str = "…") -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label, style=discord.ButtonStyle.secondary, custom_id=f"{APPEAL_PREFIX}{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Match[str], /
    ) -> AppealButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await flows_of(interaction).appeal(interaction, self.job_id)


DYNAMIC_ITEMS = (AgainButton, MoreButton, AgainSelect, PickSelect, LaterButton, AppealButton)


def result_view(
    job_id: str, styles: Mapping[str, StylePreset], used: str | None, locale: str
) -> discord.ui.View:
    """Under a result: a few other styles, and "Another style" for the full list."""
    view = discord.ui.View(timeout=None)
    others = [(name, p) for name, p in styles.items() if name != used][:STYLE_BUTTONS]
    for name, preset in others:
        view.add_item(AgainButton(job_id, name, preset.display_name(locale)))
    view.add_item(MoreButton(job_id, t("another_style", locale)))
    return view


def again_view(job_id: str, styles: Mapping[str, StylePreset], locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AgainSelect(job_id, _select(f"sb:againpick:{job_id}", styles, locale)))
    return view


def pick_view(size: int, styles: Mapping[str, StylePreset], locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(PickSelect(size, _select(f"sb:pick:{size}", styles, locale)))
    return view


def later_view(offer_id: str, locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(LaterButton(offer_id, t("later_button", locale)))
    return view


def appeal_view(job_id: str, locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AppealButton(job_id, t("appeal_button", locale)))
    return view


def buy_view(sku_ids: list[int]) -> discord.ui.View:
    """One premium button per product sold on Discord: Discord shows its name and price."""
    view = discord.ui.View(timeout=None)
    for sku_id in sku_ids[:MAX_BUTTONS]:
        view.add_item(discord.ui.Button(style=discord.ButtonStyle.premium, sku_id=sku_id))
    return view
