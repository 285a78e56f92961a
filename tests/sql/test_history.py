"""/results and a job's photo source, on SQLite and PostgreSQL, with the publisher faked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from bots.console.adapter import ConsoleChat
from bots.core import Core, answer_plain, forget, parse_command
from bots.core.history import job_view
from quota.lifecycle import finish_done
from storage.db import transaction
from storage.models import Job, JobStatus

pytestmark = pytest.mark.sql


def _done(core: Core, job_id: str) -> None:
    """Finish a job as the worker would, with a stored result."""
    path = core.rt.store.save_result(job_id, Image.new("RGB", (64, 48), (200, 90, 30)))
    with transaction(core.rt.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.RUNNING
        s.flush()
        assert finish_done(s, job, str(path))


def _ask(core: Core, chat: ConsoleChat, photo: Path, source: str | None = None) -> str:
    request = chat._request("ghibli", photo)
    reply = core.submit(replace(request, source=source))
    assert reply.job_id, reply.text
    return reply.job_id


def test_results_lists_kept_results_newest_first(core: Core, tmp_path: Path) -> None:
    from tests.conftest import make_photo

    chat = ConsoleChat(core, "console:rae")
    command = parse_command("/results")
    assert command is not None
    empty = answer_plain(core, chat.sender, command)
    assert empty is not None and not empty.images and "24 hours" in empty.text
    first = _ask(core, chat, make_photo(tmp_path / "a.jpg", (100, 80)))
    _done(core, first)
    second = _ask(core, chat, make_photo(tmp_path / "b.jpg", (90, 80)))
    _done(core, second)
    reply = answer_plain(core, chat.sender, command)
    assert reply is not None
    assert reply.images == (core.rt.store.result_path(second), core.rt.store.result_path(first))
    assert "results (2)" in reply.text
    core.rt.store.delete_result(second)  # purged by retention: not offered any more
    again = answer_plain(core, chat.sender, command)
    assert again is not None and again.images == (core.rt.store.result_path(first),)


def test_a_job_keeps_its_photo_source_until_forget(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:sol")
    url = "https://cdn.discordapp.com/attachments/1/2/photo.jpg"
    job_id = _ask(core, chat, photo, source=url)
    view = job_view(core, job_id)
    assert view is not None and (view.source, view.user_id, view.style) == (
        url,
        "console:sol",
        "ghibli",
    )
    assert view.target is not None and view.target.platform == "console"
    forget(core, chat.sender)
    gone = job_view(core, job_id)
    assert gone is not None and gone.source is None and gone.target is None
    assert job_view(core, "0" * 32) is None
