"""The public status page, served by each bot process (STYLEBOT_STATUS_PORT) on its event loop.

GET /            the page in English      GET /status.json?lang=ar   the figures, for the refresh
GET /ar          the page in Arabic (each other catalog language at /<code>)

Read-only, no personal data. The figures are read off the event loop, at most once every
`cache_s` however many people refresh: one read at a time, the others wait for its result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from bots.core.messages import DEFAULT_LOCALE, locales, normalise_locale
from bots.core.runtime import Runtime
from bots.core.status_figures import StatusFigures, read_status
from bots.core.status_html import CSP, JSON_PATH, page_path, payload, render_page, unavailable_page

log = logging.getLogger("stylebot.status")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class FiguresCache:
    """The latest figures, read again once they are `max_age_s` old; one read at a time."""

    def __init__(
        self,
        read: Callable[[], StatusFigures],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read, self.max_age_s, self.clock = read, max_age_s, clock
        self._lock = asyncio.Lock()
        self._figures: StatusFigures | None = None
        self._read_at = 0.0

    async def get(self) -> StatusFigures:
        async with self._lock:
            if self._figures is None or self.clock() - self._read_at >= self.max_age_s:
                self._figures = await asyncio.to_thread(self.read)
                self._read_at = self.clock()
            return self._figures


class StatusPage:
    def __init__(
        self,
        runtime: Runtime,
        *,
        port: int,
        host: str = "0.0.0.0",
        refresh_s: float = 15.0,
        cache_s: float = 2.0,
    ) -> None:
        self.host, self.port, self.refresh_s = host, port, refresh_s
        self.figures = FiguresCache(lambda: read_status(runtime), cache_s)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        for loc in locales():
            if loc != DEFAULT_LOCALE:
                app.router.add_get(f"/{page_path(loc)}", self._page)
        app.router.add_get(f"/{JSON_PATH}", self._json)
        return app

    async def start(self) -> None:
        # No access log: it would record visitors' addresses.
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]  # the port chosen, when asked for port 0
        log.info("status_page_listening host=%s port=%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def _page(self, request: web.Request) -> web.Response:
        loc = normalise_locale(request.path.strip("/") or DEFAULT_LOCALE)
        try:
            figures = await self.figures.get()
        except Exception as exc:  # the database is unreachable: say so, politely, and recover
            log.warning("status_unavailable error=%s", type(exc).__name__)
            return self._html(unavailable_page(loc), status=503)
        return self._html(render_page(figures, loc, self.refresh_s))

    async def _json(self, request: web.Request) -> web.Response:
        loc = normalise_locale(request.query.get("lang"))
        try:
            figures = await self.figures.get()
        except Exception as exc:
            log.warning("status_unavailable error=%s", type(exc).__name__)
            return web.json_response({"error": "unavailable"}, status=503, headers=HEADERS)
        return web.json_response(payload(figures, loc), headers=self._cache_headers())

    def _html(self, text: str, status: int = 200) -> web.Response:
        headers = self._cache_headers() if status == 200 else HEADERS
        return web.Response(text=text, status=status, content_type="text/html", headers=headers)

    def _cache_headers(self) -> dict[str, str]:
        max_age = int(self.figures.max_age_s)
        return {**HEADERS, "Cache-Control": f"public, max-age={max_age}"}


@asynccontextmanager
async def status_page(runtime: Runtime) -> AsyncIterator[StatusPage | None]:
    """The status page for a bot process's life, when STYLEBOT_STATUS_PORT is set.

    A port already taken (say, by the other platform's bot on the same host, which serves the
    same figures) is logged and the bot runs on without a page of its own.
    """
    port = runtime.settings.status_port
    page = None if port is None else StatusPage(runtime, port=port)
    if page is not None:
        try:
            await page.start()
        except OSError as exc:
            log.error("status_page_failed port=%s error=%s", port, exc)
            await page.stop()
            page = None
    try:
        yield page
    finally:
        if page is not None:
            await page.stop()
