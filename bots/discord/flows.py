"""What each interaction asks of the core. Every one is acknowledged first (Discord allows 3
seconds), and only then touches SQL or downloads; the answer edits that acknowledgement."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import Any

import discord

from bots.core import (
    Admin,
    AdminRequest,
    Command,
    Core,
    ImageRequest,
    answer_plain,
)
from bots.core.appeals import appeal
from bots.core.history import job_view
from bots.core.messages import t
from bots.discord.components import again_view, buy_view, later_view, pick_view
from bots.discord.files import fitted
from bots.discord.sender import DiscordSender
from bots.discord.translate import (
    PLATFORM,
    ImageRef,
    first_image,
    idempotency_key,
    image_ref,
    is_discord_url,
    refusal,
    sender_of,
    target_of,
)

log = logging.getLogger("stylebot.discord")

MB = 1024 * 1024
ALREADY_ACKNOWLEDGED = 40060


class Flows:
    def __init__(
        self,
        core: Core,
        client: discord.Client,
        sender: DiscordSender,
        clock: Callable[[], float],
        fetch_timeout_s: float = 60.0,
    ) -> None:
        self.core, self.client, self.sender, self.clock = core, client, sender, clock
        self.admin = Admin(core)
        self.fetch_timeout_s = fetch_timeout_s
        self.limit_mb = core.rt.settings.max_upload_mb
        self.api_url = core.rt.settings.discord_api_url
        self.on_status: Callable[[str, str], None] | None = None  # a status message was shown

    @property
    def styles(self) -> dict[str, Any]:
        return self.core.rt.styles

    # --- acknowledging and answering ---------------------------------------------------------

    async def ack(self, interaction: discord.Interaction, *, update: bool = False) -> bool:
        """Defer: a private "thinking…" answer, or (for a component) an edit to come of its
        message. False when the interaction is gone or was acknowledged already (a redelivery)."""
        try:
            if update:
                await interaction.response.defer()
            else:
                await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.InteractionResponded:
            return False
        except discord.HTTPException as exc:
            if isinstance(exc, discord.NotFound) or exc.code == ALREADY_ACKNOWLEDGED:
                log.info("interaction_not_acknowledged id=%s code=%s", interaction.id, exc.code)
                return False
            raise
        return True

    async def say(self, interaction: discord.Interaction, text: str, **extra: Any) -> None:
        try:
            await interaction.edit_original_response(content=text, **extra)
        except discord.HTTPException as exc:  # the job (if any) stands; its result still comes
            log.warning("answer_failed id=%s status=%s", interaction.id, exc.status)

    # --- photo requests --------------------------------------------------------------------------

    async def from_attachment(
        self, interaction: discord.Interaction, attachment: discord.Attachment, style: str
    ) -> None:
        """/ghibli image:…, /stylize image:… style:…"""
        if not await self.ack(interaction):
            return
        image = image_ref(attachment)
        if await self._refused(interaction, image):
            return
        await self._submit(interaction, style, image, idempotency_key(interaction))

    async def offer_styles(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """ "Stylize image" on a message: the photo, and a list of styles under it."""
        if not await self.ack(interaction):
            return
        loc = sender_of(interaction).locale
        attachment = first_image(message.attachments)
        if attachment is None:
            await self.say(interaction, t("no_image_in_message", loc))
            return
        image = image_ref(attachment)
        if await self._refused(interaction, image):
            return
        embed = discord.Embed().set_image(url=image.url)  # the choice carries its photo along
        view = pick_view(image.size or 0, self.styles, loc)
        await self.say(interaction, t("pick_style", loc), embed=embed, view=view)

    async def picked(self, interaction: discord.Interaction, size: int, style: str) -> None:
        if not await self.ack(interaction, update=True):
            return
        message = interaction.message
        embeds = message.embeds if message else []
        url = embeds[0].image.url if embeds and embeds[0].image else None
        if message is None or not url or not is_discord_url(url, self.api_url):
            await self.say(
                interaction, t("photo_missing", sender_of(interaction).locale), view=None
            )
            return
        # One job per photo and style: a double click is the same request.
        key = f"discord:pick:{message.id}:{style}"
        await self._submit(interaction, style, ImageRef(url, size or None, None), key)

    async def again(self, interaction: discord.Interaction, job_id: str, style: str) -> None:
        """A style button under a result, or a choice from "Another style"."""
        update = interaction.message is not None and bool(interaction.message.flags.ephemeral)
        if not await self.ack(interaction, update=update):
            return
        sender = sender_of(interaction)
        view = await asyncio.to_thread(job_view, self.core, job_id)
        if view is None or not view.source or not is_discord_url(view.source, self.api_url):
            await self.say(interaction, t("photo_missing", sender.locale), view=None)
            return
        if view.user_id != sender.user_id:
            await self.say(interaction, t("not_your_photo", sender.locale), view=None)
            return
        key = f"discord:again:{job_id}:{style}"
        await self._submit(interaction, style, ImageRef(view.source, None, None), key)

    async def more_styles(self, interaction: discord.Interaction, job_id: str) -> None:
        loc = sender_of(interaction).locale
        view = again_view(job_id, self.styles, loc)
        try:
            await interaction.response.send_message(t("pick_style", loc), view=view, ephemeral=True)
        except discord.HTTPException as exc:
            log.info("interaction_not_acknowledged id=%s code=%s", interaction.id, exc.code)

    async def _refused(self, interaction: discord.Interaction, image: ImageRef) -> bool:
        reason = refusal(image, int(self.limit_mb * MB))
        if reason is not None:
            loc = sender_of(interaction).locale
            await self.say(interaction, t(reason, loc, mb=self.limit_mb))
        return reason is not None

    async def _submit(
        self, interaction: discord.Interaction, style: str, image: ImageRef, key: str
    ) -> None:
        target = target_of(interaction, self.clock())
        request = ImageRequest(
            sender=sender_of(interaction),
            target=target,
            style=style,
            idempotency_key=key,
            fetch=self.fetcher(image.url),
            declared_size=image.size,
            source=image.url,
        )
        reply = await asyncio.to_thread(self.core.submit, request)
        log.info("request user=%s style=%s job=%s", request.sender.user_id, style, reply.job_id)
        # The deferred answer is filled first: Discord would otherwise turn the first follow-up
        # into that (private) answer, and the result must stay a message of its own.
        offer = later_view(reply.offer_id, request.sender.locale) if reply.offer_id else None
        await self.say(interaction, reply.text, view=offer)
        if reply.image is not None:  # the same photo and style earlier today: sent again
            await self.sender.send(target, reply)
            return
        if reply.job_id is not None and self.on_status is not None:
            self.on_status(reply.job_id, reply.text)

    async def later(self, interaction: discord.Interaction, offer_id: str) -> None:
        """ "Do it when there's room" under a refusal: the relax lane. The answer replaces the
        refusal and its button; the result comes later through the delivery loop."""
        if not await self.ack(interaction, update=True):
            return
        sender = sender_of(interaction)
        reply = await asyncio.to_thread(
            self.core.accept_later, sender, offer_id, self.source_fetcher()
        )
        log.info("later user=%s offer=%s job=%s", sender.user_id, offer_id, reply.job_id)
        await self.say(interaction, reply.text, view=None)
        if reply.image is not None:  # the same photo and style made earlier today
            await self.sender.send(target_of(interaction, self.clock()), reply)

    async def appeal(self, interaction: discord.Interaction, job_id: str) -> None:
        """ "Ask for a review" under a held-back explanation: the answer replaces it and its
        button; a press that finds no held job of the presser's (a stranger's, say) is answered
        privately and leaves the message alone."""
        if not await self.ack(interaction, update=True):
            return
        sender = sender_of(interaction)
        reply = await asyncio.to_thread(appeal, self.core, sender, job_id)
        log.info("appeal_pressed user=%s job=%s", sender.user_id, reply.job_id)
        if reply.job_id is not None:
            await self.say(interaction, reply.text, view=None)
            return
        try:
            await interaction.followup.send(reply.text, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("answer_failed id=%s status=%s", interaction.id, exc.status)

    def fetcher(self, url: str) -> Callable[[], bytes]:
        """Call on the bot's loop; the callable it returns runs in the core's worker thread."""
        fetch = self.source_fetcher()
        return lambda: fetch(url)

    def source_fetcher(self) -> Callable[[str], bytes]:
        """Like fetcher, for a URL stored earlier (a relax offer's source): only Discord's own
        files are fetched, whatever the row says."""
        loop = asyncio.get_running_loop()

        def fetch(url: str) -> bytes:
            if not is_discord_url(url, self.api_url):
                raise ValueError("not a Discord attachment")
            future = asyncio.run_coroutine_threadsafe(self.client.http.get_from_cdn(url), loop)
            try:
                return future.result(self.fetch_timeout_s)
            except TimeoutError:
                future.cancel()
                raise

        return fetch

    # --- commands without a photo ----------------------------------------------------------------

    async def plain(self, interaction: discord.Interaction, name: str) -> None:
        """/quota, /styles, /cancel, /results, /forget, /help: private answers."""
        if not await self.ack(interaction):
            return
        sender = sender_of(interaction)
        if name == "help":
            await self.say(interaction, t("help_discord", sender.locale))
            return
        reply = await asyncio.to_thread(answer_plain, self.core, sender, Command(name))
        assert reply is not None, name
        if name == "buy":
            sold = self.core.shop.for_platform(PLATFORM)
            skus = [int(p.discord_sku) for p in sold if p.discord_sku]
            await self.say(interaction, reply.text, view=buy_view(skus) if skus else None)
            return
        limit = interaction.filesize_limit
        files = [
            discord.File(
                io.BytesIO(await asyncio.to_thread(fitted, path, limit)), f"result-{i}.jpg"
            )
            for i, path in enumerate(reply.images, 1)
        ]
        await self.say(interaction, reply.text, attachments=files)
        if name == "cancel" and reply.job_id:  # its status message says so too
            view = await asyncio.to_thread(job_view, self.core, reply.job_id)
            await self.sender.edit_status(view.target if view else None, reply.text)

    async def run_admin(self, interaction: discord.Interaction, verb: str, *args: str) -> None:
        """An admin command: checked against STYLEBOT_ADMINS (not Discord permissions), audited."""
        if not await self.ack(interaction):
            return
        sender = sender_of(interaction)
        request = AdminRequest(sender.user_id, sender.locale, Command(verb, args))
        reply = await asyncio.to_thread(self.admin.handle, request)
        await self.say(interaction, reply.text)
