"""Webhook mode: PTB's webhook server takes updates only with the right secret token."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bots.core.messages import t
from tests.e2e.harness import Stack, running_stack, settle
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e

SECRET = "right-Secret_123"
PUBLIC_URL = "https://bot.example.test/tg-hook"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = _free_port()
    with running_stack(
        tmp_path_factory.mktemp("webhook"),
        telegram_webhook_url=PUBLIC_URL,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=port,
    ) as stack:
        yield stack


def post(stack: Stack, update: dict[str, Any], secret: str | None) -> int:
    port = stack.settings.telegram_webhook_port
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/tg-hook", json.dumps(update).encode(), headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def help_update(chat: int, message_id: int, update_id: int) -> dict[str, Any]:
    message = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": {"id": chat, "type": "private", "first_name": "W"},
        "from": user(chat),
        "text": "/help",
    }
    return {"update_id": update_id, "message": message}


def test_the_webhook_is_registered_with_its_secret(hooked: Stack) -> None:
    (call,) = hooked.emulator.calls_of("setWebhook")
    assert call.params["url"] == PUBLIC_URL and call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query", "pre_checkout_query"]
    assert not hooked.emulator.calls_of("getUpdates")  # no polling in webhook mode


@pytest.mark.parametrize("secret", [None, "wrong-secret"], ids=["missing", "wrong"])
def test_a_request_without_the_secret_is_refused(hooked: Stack, secret: str | None) -> None:
    assert post(hooked, help_update(8101, 1, 501), secret) == 403
    settle(0.3)
    assert not hooked.emulator.calls_of("sendMessage", chat_id=8101)


def test_the_right_secret_is_served_once_even_when_retried(hooked: Stack) -> None:
    update = help_update(8102, 1, 502)
    assert post(hooked, update, SECRET) == 200
    assert post(hooked, {**update, "update_id": 503}, SECRET) == 200  # Telegram retries
    emu = hooked.emulator
    emu.wait_for(lambda: emu.calls_of("sendMessage", chat_id=8102))
    settle(0.3)
    (reply,) = emu.calls_of("sendMessage", chat_id=8102)
    assert reply.params["text"] == t("help", "en")
