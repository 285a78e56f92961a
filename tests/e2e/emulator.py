"""A local Telegram Bot API emulator (aiohttp) for end-to-end tests.

It answers what python-telegram-bot calls (`/bot<token>/<method>` and the file download path
`/file/bot<token>/<path>`), records every call, feeds injected updates to getUpdates, and can
answer 429 (with retry_after) or 5xx on demand. Tests inject from their own thread; the server
runs on the bot's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.e2e.methods import BOT, ApiError, MethodsMixin
from tests.e2e.stars import Charge, PreCheckout, StarsMixin

# Shaped like a real token, so the log redaction pattern would recognise it too.
TOKEN = "1234567:AAE2eTestTokenForTheBotApiEmulator_x1"  # fake; not a real token shape
BOT_ID, BOT_USERNAME = BOT["id"], BOT["username"]
JSON_FIELDS = {
    "reply_parameters",
    "reply_markup",
    "commands",
    "scope",
    "allowed_updates",
    "media",
    "prices",
}
INT_FIELDS = {"chat_id", "message_id", "offset", "timeout", "limit", "message_thread_id"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 200
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def _decode(name: str, value: str) -> Any:
    if name in JSON_FIELDS or value in ("true", "false"):
        return json.loads(value)
    if name in INT_FIELDS:
        return int(value)
    return value


class Emulator(MethodsMixin, StarsMixin):
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.declared: dict[str, int] = {}  # file_id -> size claimed by getFile
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self.faults: dict[str, deque[tuple[int, int | None]]] = defaultdict(deque)
        self.webhook: dict[str, Any] | None = None
        self.charges: dict[str, Charge] = {}  # telegram_payment_charge_id -> the payment
        self.prechecks: dict[str, PreCheckout] = {}  # pre_checkout_query id -> its answer
        self.echo_refunds = True
        self._next_update = 1
        self._next_message: dict[int, int] = defaultdict(lambda: 100)
        self._wake = asyncio.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- server --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._closing = True
        self._wake.set()  # pending long polls answer now (a client's disconnect doesn't end them)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        params, files = await self._parse(request)
        call = Call(method, params, files)
        with self.lock:
            self.calls.append(call)
            fault = self.faults[method].popleft() if self.faults[method] else None
        if fault is not None:
            call.status = fault[0]
            return self._error(*fault)
        try:
            call.result = await self._dispatch(method, params, files)
        except ApiError as exc:
            call.status = exc.code
            return self._error(exc.code, exc.description)
        return web.json_response({"ok": True, "result": call.result})

    async def _dispatch(self, method: str, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        if method == "getUpdates":
            return await self._get_updates(params)
        handler: Callable[[dict[str, Any], dict[str, bytes]], Any] | None = getattr(
            self, f"m_{method}", None
        )
        if handler is None:
            raise ApiError("Not Found: method not found", 404)
        with self.lock:
            return handler(params, files)

    @staticmethod
    async def _parse(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            return dict(await request.json()), files
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[name] = value.file.read()
            else:
                params[name] = _decode(name, str(value))
        for name, value in list(params.items()):  # attach://<part> references a file part
            if isinstance(value, str) and value.startswith("attach://"):
                files[name] = files.pop(value.removeprefix("attach://"))
        return params, files

    def _error(self, code: int, description: str | int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code}
        if code == 429:  # a fault entry: (429, retry_after)
            retry_after = int(description or 1)
            body["description"] = f"Too Many Requests: retry after {retry_after}"
            body["parameters"] = {"retry_after": retry_after}
        else:
            body["description"] = str(description or "Internal Server Error")
        return web.json_response(body, status=code)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].removeprefix("files/")
        with self.lock:
            self.calls.append(Call("download", {"file_id": file_id}))
            data = self.files.get(file_id)
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            self._wake.clear()
            with self.lock:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                ready = self.updates[: int(params.get("limit") or 100)]
            if ready or self._closing or time.monotonic() >= deadline:
                return ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), deadline - time.monotonic())

    # --- test controls (any thread) -----------------------------------------------------------

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            update = {"update_id": self._next_update, **update}
            self._next_update += 1
            self.updates.append(update)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._wake.set)
        return update

    def fail(self, method: str, status: int, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` answer `status` (429 carries retry_after)."""
        with self.lock:
            for _ in range(times):
                self.faults[method].append((status, retry_after if status == 429 else None))

    def calls_of(self, method: str, ok: bool | None = True, **match: Any) -> list[Call]:
        with self.lock:
            found = list(self.calls)
        return [
            c
            for c in found
            if c.method == method
            and (ok is None or c.ok == ok)
            and all(str(c.params.get(k)) == str(v) for k, v in match.items())
        ]

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(0.05)
        with self.lock:
            tail = [(c.method, c.status, c.params) for c in self.calls[-15:]]
        raise AssertionError(f"timed out waiting for {what or check}; last calls: {tail}")
