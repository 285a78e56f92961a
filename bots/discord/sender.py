"""Replies out to Discord, decided from the job row alone (so a restarted bot decides alike):

1. while the interaction token lives: a follow-up (a result is public, a failure ephemeral),
   and the request's status message goes;
2. after it (or on its 401, never retried): a post in the channel mentioning the person, with
   the job id as nonce so a retried post is not doubled, where the bot may post there;
3. else a direct message; where that is closed too, the result waits in /results.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import discord

from bots.core import Reply, ReplyTarget, Undeliverable
from bots.discord.components import appeal_view, result_view
from bots.discord.files import fitted
from bots.discord.translate import DEFAULT_UPLOAD_LIMIT, PLATFORM, nonce_for
from tasks.styles import StylePreset

log = logging.getLogger("stylebot.discord.sender")

# The interaction's first response (the request's status message). discord.py types message
# ids as int, but formats them into the route, where Discord takes "@original" too.
ORIGINAL: Any = "@original"
GONE = (discord.NotFound, discord.Forbidden)
REFUSED_KEPT = 10_000


def token_refused(exc: discord.HTTPException) -> bool:
    """401 (Invalid Webhook Token) or 404 (Unknown Webhook/Interaction): the token is spent."""
    return exc.status in (401, 404)


class DiscordSender:
    """The delivery loop's way out (core ReplySender)."""

    def __init__(
        self,
        client: discord.Client,
        styles: Mapping[str, StylePreset],
        clock: Callable[[], float],
        token_margin_s: float = 30.0,
    ) -> None:
        self.client, self.styles, self.clock = client, styles, clock
        self.token_margin_s = token_margin_s
        self._refused: OrderedDict[str, None] = OrderedDict()  # tokens Discord said no to

    def usable(self, target: ReplyTarget) -> bool:
        alive = target.handle_alive(self.clock(), self.token_margin_s)
        return alive and target.handle is not None and target.handle not in self._refused

    def refuse(self, token: str) -> None:
        """A refused token is never tried again (too many 401s get a bot banned by Cloudflare)."""
        self._refused[token] = None
        while len(self._refused) > REFUSED_KEPT:
            self._refused.popitem(last=False)

    def webhook(self, token: str) -> discord.Webhook:
        """The interaction's webhook from its token alone, as discord.py builds it for
        Interaction.followup: it outlives the Interaction object, and a bot restart."""
        data: Any = {"id": self.client.application_id, "type": 3, "token": token}
        return discord.Webhook.from_state(data=data, state=self.client._connection)

    async def send(self, target: ReplyTarget, reply: Reply) -> None:
        if target.handle and self.usable(target):
            try:
                await self._via_interaction(target.handle, target, reply)
                return
            except discord.HTTPException as exc:
                if not token_refused(exc):
                    raise  # a 5xx discord.py already retried: the delivery loop tries later
                self.refuse(target.handle)
                log.info("interaction_token_refused job=%s status=%s", reply.job_id, exc.status)
        if target.reachable:
            try:
                await self._post(
                    self.client.get_partial_messageable(int(target.chat_id)), target, reply
                )
                return
            except GONE as exc:
                log.info("channel_unreachable job=%s code=%s", reply.job_id, exc.code)
        await self._direct(target, reply)

    async def _via_interaction(self, token: str, target: ReplyTarget, reply: Reply) -> None:
        hook = self.webhook(token)
        # A failure: the status message becomes the polite answer. A result: the status is filled
        # first, since were the deferred "thinking…" answer still empty (its first edit failed),
        # Discord would make the result that private answer, which retire() then deletes.
        if reply.image is None:  # a held-back explanation keeps its review button
            await hook.edit_message(ORIGINAL, content=reply.text, view=self._view(reply, None))
            return
        await hook.edit_message(ORIGINAL, content=reply.text, view=None)
        await hook.send(
            content=reply.text,
            file=await self._file(reply, target),
            view=self._view(reply),
            wait=True,
        )
        await self.retire(token)

    async def retire(self, token: str) -> None:
        """Delete the status message (the result is out, or the job cancelled)."""
        try:
            await self.webhook(token).delete_message(ORIGINAL)
        except discord.HTTPException as exc:  # gone already, or the token spent: nothing to undo
            log.info("status_delete_failed status=%s", exc.status)

    async def edit_status(self, target: ReplyTarget | None, text: str) -> None:
        if target is None or not target.handle or not self.usable(target):
            return
        try:
            await self.webhook(target.handle).edit_message(ORIGINAL, content=text, view=None)
        except discord.HTTPException as exc:
            log.info("status_edit_failed status=%s", exc.status)

    async def _post(
        self, channel: discord.abc.Messageable, target: ReplyTarget, reply: Reply
    ) -> None:
        mention = f"<@{target.person}>" if target.person and not target.private else ""
        await channel.send(
            content=" ".join(part for part in (mention, reply.text) if part),
            file=await self._file(reply, target) if reply.image else discord.utils.MISSING,
            view=self._view(reply),
            # No job: a fresh nonce (discord.py sends MISSING as "...", the same every time, and
            # Discord would then keep only the first of the channel's job-less posts).
            nonce=nonce_for(reply.job_id or secrets.token_hex(12)),
            allowed_mentions=discord.AllowedMentions(users=True, roles=False, everyone=False),
        )

    async def tell(self, person: str, reply: Reply) -> bool:
        """A direct message to the person, outside any request (thanks for a purchase); False
        when their DMs are closed."""
        target = ReplyTarget(PLATFORM, chat_id=person, person=person, private=True)
        try:
            await self._direct(target, reply)
        except Undeliverable:
            return False
        return True

    async def _direct(self, target: ReplyTarget, reply: Reply) -> None:
        if not target.person:
            raise Undeliverable("nobody to write to")
        try:
            dm = await self.client.create_dm(discord.Object(int(target.person)))
            await self._post(dm, replace(target, private=True), reply)
        except GONE as exc:  # DMs closed, or no shared server: /results still has it
            log.info("direct_message_refused job=%s code=%s", reply.job_id, exc.code)
            raise Undeliverable("direct messages closed") from exc

    async def _file(self, reply: Reply, target: ReplyTarget) -> discord.File:
        assert reply.image is not None
        limit = target.max_upload or DEFAULT_UPLOAD_LIMIT
        data = await asyncio.to_thread(fitted, reply.image, limit)
        return discord.File(io.BytesIO(data), filename=f"stylebot-{reply.image.stem[:8]}.jpg")

    def _view(self, reply: Reply, none: Any = discord.utils.MISSING) -> discord.ui.View | Any:
        """The buttons under a result, or the review button under a held-back explanation."""
        if reply.appeal_job is not None:
            return appeal_view(reply.appeal_job, reply.locale)
        if reply.job_id is None or reply.image is None:
            return none
        return result_view(reply.job_id, self.styles, reply.style, reply.locale)
