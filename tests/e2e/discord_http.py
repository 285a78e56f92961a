"""The REST side of the Discord emulator: its route table, request parsing and error answers."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from tests.e2e.discord_payloads import ApiError

# (method, path under /api/v10, short name, needs `Authorization: Bot <token>`). Order matters:
# "@original" and "@me" come before the placeholders that would also match them.
ROUTES: list[tuple[str, str, str, bool]] = [
    ("GET", "/gateway/bot", "gateway_bot", True),
    ("GET", "/gateway", "gateway", False),
    ("GET", "/users/@me", "me", True),
    ("POST", "/users/@me/channels", "create_dm", True),
    ("GET", "/oauth2/applications/@me", "app_info", True),
    ("GET", "/applications/@me", "app_info", True),
    ("PUT", "/applications/{application_id}/commands", "sync_global", True),
    ("GET", "/applications/{application_id}/commands", "get_commands", True),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", "sync_guild", True),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "get_commands", True),
    ("GET", "/applications/{application_id}/entitlements", "list_entitlements", True),
    (
        "POST",
        "/applications/{application_id}/entitlements/{entitlement_id}/consume",
        "consume_entitlement",
        True,
    ),
    ("POST", "/interactions/{interaction_id}/{token}/callback", "callback", False),
    ("GET", "/webhooks/{application_id}/{token}/messages/@original", "get_original", False),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/@original", "edit_original", False),
    ("DELETE", "/webhooks/{application_id}/{token}/messages/@original", "delete_original", False),
    ("POST", "/webhooks/{application_id}/{token}", "followup", False),
    ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", "get_followup", False),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", "edit_followup", False),
    (
        "DELETE",
        "/webhooks/{application_id}/{token}/messages/{message_id}",
        "delete_followup",
        False,
    ),
    ("GET", "/channels/{channel_id}", "get_channel", True),
    ("POST", "/channels/{channel_id}/messages", "channel_message", True),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "get_message", True),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "edit_message", True),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "delete_message", True),
    ("POST", "/channels/{channel_id}/typing", "typing", True),
]


def _compile(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)  # static, name, static, name, ...
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(regex + "$")


_TABLE = [(method, _compile(path), name, auth) for method, path, name, auth in ROUTES]


def match(method: str, path: str) -> tuple[str, bool, dict[str, str]]:
    """(route name, needs auth, path params); ("unknown", False, {}) when nothing matches."""
    for m, pattern, name, auth in _TABLE:
        if m == method and (found := pattern.match(path)):
            return name, auth, found.groupdict()
    return "unknown", False, {}


@dataclass
class Call:
    """One request the emulator answered (or one gateway IDENTIFY/RESUME, method "WS")."""

    method: str
    path: str
    route: str
    params: dict[str, str] = field(default_factory=dict)  # the query
    json: Any = None  # the JSON body, or a multipart body's payload_json
    files: dict[str, bytes] = field(default_factory=dict)  # multipart files by filename
    args: dict[str, str] = field(default_factory=dict)  # path params (+ interaction_id)
    status: int = 200
    result: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Part:
    index: int  # n of files[n]; the order of appearance for other names
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class Req:
    """A parsed request handed to a route method (which runs under the emulator's lock)."""

    call: Call
    parts: list[Part]

    @property
    def body(self) -> Any:
        return self.call.json

    def arg(self, name: str) -> str:
        return self.call.args[name]


_FILE_INDEX = re.compile(r"files\[(\d+)\]$")


async def parse(request: web.Request, route: str, args: dict[str, str]) -> Req:
    """JSON or multipart (payload_json + files[n]); bad JSON raises ValueError."""
    call = Call(request.method, request.path, route, dict(request.query), args=dict(args))
    parts: list[Part] = []
    if request.content_type == "application/json":
        raw = await request.read()
        call.json = json.loads(raw) if raw else None
    elif request.content_type == "multipart/form-data":
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                found = _FILE_INDEX.match(name)
                index = int(found.group(1)) if found else len(parts)
                parts.append(Part(index, value.filename, data, value.content_type))
                call.files[value.filename] = data
            elif name == "payload_json":
                call.json = json.loads(str(value))
    return Req(call, parts)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with Content-Type exactly "application/json", as Discord sends it: discord.py only
    decodes a body whose header equals that (with "; charset=utf-8" it hands back a str)."""
    headers = {**(headers or {}), "Content-Type": "application/json"}
    return web.Response(body=json.dumps(body).encode(), status=status, headers=headers)


def error_response(exc: ApiError) -> web.Response:
    return json_response(exc.body(), status=exc.status)


def fault_response(route: str, status: int, retry_after: float) -> web.Response:
    """An injected failure. A 429 carries what discord.py reads: the body's retry_after, and a
    `Via` header (without one it takes the 429 for a Cloudflare ban and gives up)."""
    if status != 429:
        known = status in HTTPStatus._value2member_map_
        message = f"{status}: {HTTPStatus(status).phrase if known else 'Server Error'}"
        return json_response({"message": message, "code": 0}, status=status)
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": False,
        "code": 0,
    }
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": f"emulated-{route}",
        "X-RateLimit-Scope": "user",
        "Via": "1.1 google",
    }
    return json_response(body, status=429, headers=headers)


def reply(status: int, body: Any) -> web.Response:
    if body is None:
        return web.Response(status=204)
    return json_response(body, status=status)
