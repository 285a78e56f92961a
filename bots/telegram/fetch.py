"""Downloading a photo only when the core asks for it, from the core's worker thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable

from telegram import Bot


class FileTooLarge(Exception):
    """getFile reports more bytes than the bot may download."""


class Downloader:
    """Makes the `fetch` callables of ImageRequest: each runs the download on the bot's loop."""

    def __init__(self, bot: Bot, limit_bytes: int, timeout_s: float) -> None:
        self.bot, self.limit_bytes, self.timeout_s = bot, limit_bytes, timeout_s

    def fetcher(self, file_id: str) -> Callable[[], bytes]:
        """Call on the bot's event loop; the callable it returns runs in another thread."""
        fetch = self.by_file_id()
        return lambda: fetch(file_id)

    def by_file_id(self) -> Callable[[str], bytes]:
        """Like `fetcher`, for a file id known only later (a relax offer's stored source)."""
        loop = asyncio.get_running_loop()

        def fetch(file_id: str) -> bytes:  # called by the core in a worker thread
            future = asyncio.run_coroutine_threadsafe(self.download(file_id), loop)
            try:
                return future.result(self.timeout_s)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise

        return fetch

    async def download(self, file_id: str) -> bytes:
        file = await self.bot.get_file(file_id)
        if file.file_size is not None and file.file_size > self.limit_bytes:
            raise FileTooLarge(f"{file.file_size} bytes")
        return bytes(await file.download_as_bytearray())
