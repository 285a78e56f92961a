"""The Bot API methods the emulator answers, and the builders of the updates tests inject."""

from __future__ import annotations

import io
import threading
import time
import uuid
from typing import Any

from PIL import Image

BOT = {"id": 123456789, "is_bot": True, "first_name": "Stylebot", "username": "stylebot_test_bot"}


class ApiError(Exception):
    """An error answer of the Bot API: {"ok": false, "error_code": code, "description": ...}."""

    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.description, self.code = description, code


TRUE_METHODS = (
    "deleteWebhook setMyCommands deleteMyCommands answerCallbackQuery sendChatAction close logOut"
)


def _thumbnail(data: bytes, side: int) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((side, side))
        out = io.BytesIO()
        im.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue()


class MethodsMixin:
    """Needs the Emulator's state: files, declared, messages, chats, webhook, lock."""

    files: dict[str, bytes]
    declared: dict[str, int]
    messages: dict[tuple[int, int], dict[str, Any]]
    chats: dict[int, dict[str, Any]]
    webhook: dict[str, Any] | None
    _next_message: dict[int, int]
    lock: threading.RLock

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("m_") and name[2:] in TRUE_METHODS.split():
            return lambda params, files: True
        raise AttributeError(name)

    # --- methods ---------------------------------------------------------------------------

    def m_getMe(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {**BOT, "can_join_groups": True, "can_read_all_group_messages": False}

    def m_setWebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> bool:
        self.webhook = params
        return True

    def m_getMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> list[Any]:
        return []

    def m_sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return self._bot_message(params, text=params["text"])

    def m_sendPhoto(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        sizes = self.photo_sizes(files["photo"])
        return self._bot_message(params, photo=sizes, caption=params.get("caption"))

    def m_sendMediaGroup(self, params: dict[str, Any], files: dict[str, bytes]) -> list[Any]:
        """An album: each item's photo is a file part named by its attach:// reference."""
        sent = []
        for item in params["media"]:
            data = files[str(item["media"]).removeprefix("attach://")]
            sizes = self.photo_sizes(data)
            sent.append(self._bot_message(params, photo=sizes, caption=item.get("caption")))
        return sent

    def m_sendDocument(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        doc = self.register(files["document"], mime_type="image/jpeg", file_name="result.jpg")
        return self._bot_message(params, document=doc, caption=params.get("caption"))

    def m_editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        msg = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if msg is None:
            raise ApiError("Bad Request: message to edit not found")
        if msg.get("text") == params["text"] and "reply_markup" not in msg:
            raise ApiError("Bad Request: message is not modified")
        msg["text"] = params["text"]
        msg.pop("reply_markup", None)  # an edit without a markup removes the keyboard
        if "reply_markup" in params:
            msg["reply_markup"] = params["reply_markup"]
        return msg

    def m_deleteMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> bool:
        if self.messages.pop((int(params["chat_id"]), int(params["message_id"])), None) is None:
            raise ApiError("Bad Request: message to delete not found")
        return True

    def m_getFile(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        file_id = params["file_id"]
        if file_id not in self.files and file_id not in self.declared:
            raise ApiError("Bad Request: invalid file_id")
        size = self.declared.get(file_id, len(self.files.get(file_id, b"")))
        path = f"files/{file_id}"
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": size, "file_path": path}

    def m_getWebhookInfo(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        url = (self.webhook or {}).get("url", "")
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    # --- building messages -----------------------------------------------------------------

    def _next_id(self, chat_id: int) -> int:
        self._next_message[chat_id] += 1
        return self._next_message[chat_id]

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self.chats:
            return self.chats[chat_id]
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        return {"id": chat_id, "type": "group", "title": f"Group {chat_id}"}

    def _bot_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        msg = {"from": BOT, **{k: v for k, v in content.items() if v is not None}}
        msg = self._store(chat_id, msg)
        reply_to = (params.get("reply_parameters") or {}).get("message_id")
        replied = self.messages.get((chat_id, reply_to)) if reply_to else None
        if replied is not None:
            msg["reply_to_message"] = {k: v for k, v in replied.items() if k != "reply_to_message"}
        if params.get("reply_markup"):
            msg["reply_markup"] = params["reply_markup"]
        return msg

    def _store(self, chat_id: int, msg: dict[str, Any]) -> dict[str, Any]:
        mid = self._next_id(chat_id)
        msg = {"message_id": mid, "date": int(time.time()), "chat": self.chat(chat_id), **msg}
        self.messages[(chat_id, mid)] = msg
        return msg

    def register(self, data: bytes, declared: int | None = None, **meta: Any) -> dict[str, Any]:
        """Store a file; `declared` makes getFile claim another size (no bytes needed)."""
        file_id = f"F{uuid.uuid4().hex[:16]}"
        self.files[file_id] = data
        if declared is not None:
            self.declared[file_id] = declared
        size = declared if declared is not None else len(data)
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": size, **meta}

    def photo_sizes(self, data: bytes, huge: int | None = None) -> list[dict[str, Any]]:
        """Telegram's several sizes of one photo: thumbnails, the photo, optionally a
        larger one claiming `huge` bytes (over the download limit)."""
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
        sizes = []
        for side in (90, 160):  # smaller than the photos tests send
            thumb = _thumbnail(data, side)
            with Image.open(io.BytesIO(thumb)) as t:
                sizes.append(self.register(thumb, width=t.width, height=t.height))
        sizes.append(self.register(data, width=width, height=height))
        if huge is not None:
            sizes.append(self.register(b"", declared=huge, width=width * 4, height=height * 4))
        return sizes

    def user_message(
        self,
        chat_id: int,
        user: dict[str, Any],
        reply_to: dict[str, Any] | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        """A message from `user` in `chat_id` (text, caption, photo, document, ...), injected
        as an update; returns the message."""
        if reply_to is not None:
            content["reply_to_message"] = {
                k: v for k, v in reply_to.items() if k != "reply_to_message"
            }
        with self.lock:
            msg = self._store(chat_id, {"from": user, **content})
        self.inject({"message": msg})
        return msg

    def send_photo(
        self,
        chat_id: int,
        user: dict[str, Any],
        data: bytes,
        huge: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        with self.lock:
            sizes = self.photo_sizes(data, huge)
        return self.user_message(chat_id, user, photo=sizes, **content)

    def send_document(
        self, chat_id: int, user: dict[str, Any], data: bytes, mime: str, name: str, **content: Any
    ) -> dict[str, Any]:
        with self.lock:
            doc = self.register(data, mime_type=mime, file_name=name)
        return self.user_message(chat_id, user, document=doc, **content)

    def press(self, user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        query = {"id": uuid.uuid4().hex, "from": user, "chat_instance": "c", "data": data}
        return self.inject({"callback_query": {**query, "message": message}})


def user(user_id: int, language: str = "en") -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": f"User{user_id}",
        "username": f"user{user_id}",
        "language_code": language,
    }
