"""The gateway websocket of the Discord emulator: HELLO, IDENTIFY -> READY (+ GUILD_CREATEs),
heartbeats, dispatches with sequence numbers, RESUME with replay, zlib-stream transport.

Each IDENTIFY opens a session that outlives its connection unless the client ends it (close
code 1000/1001), so a dropped client can RESUME and get what it missed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.e2e.discord_http import Call
from tests.e2e.discord_payloads import APP_ID, MESSAGE_CONTENT, PRIVILEGED, TOKEN, ready_payload

if TYPE_CHECKING:
    from tests.e2e.discord_state import DiscordState

HEARTBEAT_MS = 5000  # discord.py reconnects after 60 s of silence; ACKs keep it talking


class Connection:
    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        # zlib-stream: one deflate stream per connection, each message ending in Z_SYNC_FLUSH.
        self.zlib = zlib.compressobj() if compress else None
        self.send_lock = asyncio.Lock()  # frames must leave in the order they were compressed
        self.sent = 0  # the last sequence number sent on this connection
        self.session: Session | None = None
        self.dropped = False  # closed by the emulator: its session stays resumable

    async def send(self, frame: str) -> None:
        """Callers hold send_lock."""
        if self.zlib is None:
            await self.ws.send_str(frame)
            return
        data = self.zlib.compress(frame.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH)
        await self.ws.send_bytes(data)

    async def send_op(self, op: int, data: Any) -> None:
        async with self.send_lock:
            await self.send(json.dumps({"op": op, "d": data, "s": None, "t": None}))


@dataclass
class Session:
    id: str
    intents: int
    events: list[tuple[int, str]] = field(default_factory=list)  # (seq, frame)
    conn: Connection | None = None

    @property
    def seq(self) -> int:
        return self.events[-1][0] if self.events else 0


class Gateway:
    def __init__(self, state: DiscordState) -> None:
        self.state = state
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.identifies: list[dict[str, Any]] = []  # IDENTIFY payloads, in order
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def url(self) -> str:
        return "ws" + self.state.url.removeprefix("http") + "/gateway"

    # --- connections --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20, timeout=5.0)
        await ws.prepare(request)
        conn = Connection(ws, request.query.get("compress") == "zlib-stream")
        self.connections.add(conn)
        try:
            if request.query.get("v", "10") not in ("9", "10"):
                await ws.close(code=4012, message=b"Invalid API version.")
                return ws
            await conn.send_op(10, {"heartbeat_interval": HEARTBEAT_MS, "_trace": ["emulator"]})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._receive(conn, json.loads(msg.data), dict(request.query))
        finally:
            self.connections.discard(conn)
            self._detach(conn)
        return ws

    async def _receive(self, conn: Connection, msg: dict[str, Any], query: dict[str, str]) -> None:
        op, data = msg.get("op"), msg.get("d") or {}
        if op == 1:  # a heartbeat
            await conn.send_op(11, None)
        elif op == 2:
            await self._identify(conn, data, query)
        elif op == 6:
            await self._resume(conn, data, query)
        # presence updates (3), member requests (8) and the rest need no answer here

    def _record(self, route: str, data: Any, query: dict[str, str]) -> Call:
        call = Call("WS", "/gateway", route, query, data)
        with self.state.lock:
            self.state.calls.append(call)
        return call

    async def _refuse(self, conn: Connection, call: Call, code: int, reason: bytes) -> None:
        call.status = code
        await conn.ws.close(code=code, message=reason)

    async def _identify(
        self, conn: Connection, data: dict[str, Any], query: dict[str, str]
    ) -> None:
        call = self._record("identify", data, query)
        if conn.session is not None:
            return await self._refuse(conn, call, 4005, b"Already authenticated.")
        if data.get("token") != TOKEN:
            return await self._refuse(conn, call, 4004, b"Authentication failed.")
        intents = int(data.get("intents") or 0)
        if intents & PRIVILEGED & ~self.state.privileged_intents:
            return await self._refuse(conn, call, 4014, b"Disallowed intent(s).")
        with self.state.lock:
            session = Session(secrets.token_hex(16), intents, conn=conn)
            self.sessions[session.id] = session
            self.identifies.append(data)
            conn.session = session
            guilds = sorted(self.state.bot_guilds)
            self._append(session, "READY", ready_payload(session.id, guilds, self.url, data))
            for guild in self.state.guild_payloads():
                self._append(session, "GUILD_CREATE", guild)
        await self._flush(session)

    async def _resume(self, conn: Connection, data: dict[str, Any], query: dict[str, str]) -> None:
        call = self._record("resume", data, query)
        if data.get("token") != TOKEN:
            return await self._refuse(conn, call, 4004, b"Authentication failed.")
        with self.state.lock:
            session = self.sessions.get(str(data.get("session_id")))
            if session is not None:
                session.conn, conn.session = conn, session
                conn.sent = int(data.get("seq") or 0)  # replay what came after it
                call.result = {"replayed": session.seq - conn.sent}
                self._append(session, "RESUMED", {"_trace": ["emulator"]})
        if session is None:
            call.status = 409
            await conn.send_op(9, False)  # INVALID_SESSION, not resumable: identify afresh
            return
        await self._flush(session)

    def _detach(self, conn: Connection) -> None:
        with self.state.lock:
            session = conn.session
            if session is None or session.conn is not conn:
                return
            session.conn = None
            if not conn.dropped and conn.ws.close_code in (1000, 1001):
                self.sessions.pop(session.id, None)  # the client ended it

    # --- dispatching --------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any], intent: int = 0) -> None:
        """Send an event to every open session (any thread); `intent` gates who gets it."""
        with self.state.lock:
            targets = [s for s in self.sessions.values() if not intent or s.intents & intent]
            for session in targets:
                self._append(session, event, _visible(session, event, data))
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._schedule, targets)

    def _append(self, session: Session, event: str, data: dict[str, Any]) -> None:
        seq = session.seq + 1
        frame = json.dumps({"op": 0, "t": event, "s": seq, "d": data})  # frozen as of now
        session.events.append((seq, frame))

    def _schedule(self, targets: list[Session]) -> None:
        for session in targets:
            self._spawn(self._flush(session))

    async def _flush(self, session: Session) -> None:
        conn = session.conn
        if conn is None:
            return
        async with conn.send_lock:
            while True:
                with self.state.lock:
                    if session.conn is not conn:
                        return
                    pending = [(seq, f) for seq, f in session.events if seq > conn.sent]
                if not pending:
                    return
                for seq, frame in pending:
                    try:
                        await conn.send(frame)
                    except (ConnectionError, RuntimeError):
                        return  # closing; a RESUME replays the rest
                    conn.sent = seq

    # --- test controls ------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Drop every connection (any thread) with a resumable close code."""
        assert self.loop is not None, "start() the emulator first"
        self.loop.call_soon_threadsafe(self._spawn, self._drop(4000, b"Emulated disconnect"))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # only touched on the loop, so stop() can wait for them
        task.add_done_callback(self._tasks.discard)

    async def _drop(self, code: int, reason: bytes) -> None:
        for conn in list(self.connections):
            conn.dropped = True
            await conn.ws.close(code=code, message=reason)

    async def close(self) -> None:
        await self._drop(1001, b"Emulator stopping")
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _visible(session: Session, event: str, data: dict[str, Any]) -> dict[str, Any]:
    """Without MESSAGE_CONTENT, guild messages arrive emptied unless the bot wrote them or is
    mentioned (DMs keep their content) - Discord's rule for the privileged intent."""
    if event != "MESSAGE_CREATE" or session.intents & MESSAGE_CONTENT or "guild_id" not in data:
        return data
    bot = str(APP_ID)
    if data["author"]["id"] == bot or any(m["id"] == bot for m in data.get("mentions", [])):
        return data
    return {**data, "content": "", "embeds": [], "attachments": [], "components": []}
