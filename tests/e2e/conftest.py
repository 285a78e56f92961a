"""Fixtures of the end-to-end tests: one stack (and one worker) per test module."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.e2e.discord_harness import DiscordStack, discord_stack
from tests.e2e.harness import Stack, running_stack

_ids = itertools.count(1001)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The bot with a real worker process making real images."""
    with running_stack(tmp_path_factory.mktemp("live"), worker=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The bot without a worker: jobs stay queued, so what happens before styling is seen."""
    with running_stack(tmp_path_factory.mktemp("idle")) as stack:
        yield stack


@pytest.fixture
def uid() -> int:
    """A fresh Telegram user id (its private chat has the same id)."""
    return next(_ids)


@pytest.fixture(scope="module")
def discord_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiscordStack]:
    """The Discord bot with a real worker process making real images."""
    with discord_stack(tmp_path_factory.mktemp("discord-live"), worker=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def discord_idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiscordStack]:
    """The Discord bot without a worker: jobs stay queued; what happens before styling shows."""
    with discord_stack(tmp_path_factory.mktemp("discord-idle")) as stack:
        yield stack
