"""A local Discord API emulator (aiohttp: REST under /api/v10, the gateway websocket at /gateway,
attachments at /attachments/...) that the real, unmodified discord.py client runs against.

It records every call, builds the people, guilds, channels and interactions a test needs,
dispatches interactions over the gateway, sells (entitlements: their events, their place on
interactions, consuming them), and can answer 429 (with retry_after) or 5xx on demand.
Tests drive it from their own thread; the server runs on an event loop in another.

Wiring: `wire_discord(emulator)` points discord.http.Route.BASE at the emulator, and also
DiscordWebSocket.DEFAULT_GATEWAY: a plain discord.Client never asks GET /gateway/bot (only
AutoShardedClient does), it connects to DEFAULT_GATEWAY.
"""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import yarl
from aiohttp import web

from tests.e2e.discord_channels import ChannelRoutes
from tests.e2e.discord_controls import Controls
from tests.e2e.discord_http import (
    Call,
    Req,
    error_response,
    fault_response,
    match,
    parse,
    reply,
)
from tests.e2e.discord_interactions import InteractionBuilders
from tests.e2e.discord_payloads import API, APP_ID, TOKEN, UPLOAD_LIMIT, ApiError
from tests.e2e.discord_webhooks import WebhookRoutes

with warnings.catch_warnings():
    # discord.py's voice support imports audioop (deprecated since 3.11): quiet here too, so
    # the emulator imports cleanly under -W error without the project's pytest filter.
    warnings.simplefilter("ignore", DeprecationWarning)
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

__all__ = ["APP_ID", "TOKEN", "Call", "DiscordEmulator", "wire_discord"]

UNAUTHORIZED = ApiError(401, 0, "401: Unauthorized")
BAD_JSON = ApiError(400, 50109, "The request body contains invalid JSON.")


class DiscordEmulator(WebhookRoutes, ChannelRoutes, InteractionBuilders, Controls):
    """`privileged_intents`: the privileged intents "enabled in the developer portal"; an
    IDENTIFY asking for others is closed with 4014, as Discord does."""

    def __init__(self, privileged_intents: int = 0) -> None:
        super().__init__(privileged_intents)
        self._runner: web.AppRunner | None = None

    # --- server -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.gateway.loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._cdn)
        app.router.add_get("/proxy/attachments/{attachment_id}/{filename}", self._cdn)
        app.router.add_route("*", API + "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        route, auth, args = match(request.method, request.path.removeprefix(API))
        try:
            req = await parse(request, route, args)
        except ValueError:
            req = Req(Call(request.method, request.path, route, dict(request.query), args=args), [])
            self._record(req.call)
            return self._answer(req.call, BAD_JSON)
        fault = self._record(req.call)
        if route == "unknown":
            return self._answer(req.call, ApiError(404, 0, "404: Not Found"))
        if auth and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return self._answer(req.call, UNAUTHORIZED)
        if fault is not None:
            req.call.status = fault[0]
            return fault_response(route, *fault)
        return self._route(req)

    def _record(self, call: Call) -> tuple[int, float] | None:
        """Keep the call; the fault it meets (an injected failure), if any."""
        with self.lock:
            self.calls.append(call)
            faults = self.faults[call.route]
            return faults.popleft() if faults else None

    def _route(self, req: Req) -> web.Response:
        call = req.call
        try:
            if any(len(p.data) > UPLOAD_LIMIT for p in req.parts):
                raise ApiError(413, 40005, "Request entity too large")
            with self.lock:
                call.status, body = getattr(self, f"r_{call.route}")(req)
                call.result = copy.deepcopy(body)  # later edits mustn't rewrite history
        except ApiError as exc:
            return self._answer(call, exc)
        return reply(call.status, call.result)

    def _answer(self, call: Call, exc: ApiError) -> web.Response:
        call.status, call.result = exc.status, exc.body()
        return error_response(exc)

    async def _cdn(self, request: web.Request) -> web.Response:
        """Attachment downloads: no auth (like Discord's CDN); a link past its `ex` is gone."""
        call = Call("GET", request.path, "cdn", dict(request.query), args=dict(request.match_info))
        fault = self._record(call)
        with self.lock:
            data = self.blobs.get(request.match_info["attachment_id"])
            expires = int(request.query.get("ex", "0") or "0", 16)
            if expires and self.now() > expires:
                data = None
        if fault is not None:
            call.status = fault[0]
            return fault_response("cdn", *fault)
        if data is None:
            call.status = 404
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=data, content_type="application/octet-stream")


@contextmanager
def wire_discord(emulator: DiscordEmulator) -> Iterator[None]:
    """Point discord.py (REST base and default gateway) at a started emulator; restore after."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = emulator.url + API
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emulator.gateway.url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway
