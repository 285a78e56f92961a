"""The whole path with real parts: PostgreSQL, a Redis broker and a `stylebot worker` process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlmodel import select

from bots.console.adapter import ConsoleChat, ConsoleSender
from bots.core import Core, Delivery, Runtime
from storage.db import transaction
from storage.models import FINISHED, Job, Usage
from tasks.worker import spawn_worker, stop_worker
from tests.conftest import make_photo, pretend_a_worker_is_live
from tests.services import live_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Runtime, dict[str, str]]]:
    with live_stack(tmp_path, STYLEBOT_BACKEND="classic") as (rt, env):
        pretend_a_worker_is_live(rt)  # admit requests before the real worker is up
        yield rt, env


def _wait_finished(rt: Runtime, ids: list[str], limit_s: float = 90) -> list[Job]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with transaction(rt.engine) as s:
            jobs = [s.get(Job, i) for i in ids]
        if all(j is not None and j.status in FINISHED for j in jobs):
            return jobs  # type: ignore[return-value]
        time.sleep(0.2)
    raise AssertionError(f"jobs not finished in {limit_s} s: {[j.status for j in jobs if j]}")


def test_real_worker_styles_fails_bad_input_and_each_reply_goes_out_once(
    live: tuple[Runtime, dict[str, str]], tmp_path: Path
) -> None:
    rt, env = live
    core = Core(rt)
    photo = make_photo(tmp_path / "in.jpg", size=(320, 240))
    # Queued before any worker runs, then its stored input is damaged: the backend must raise.
    broken = ConsoleChat(core, "console:broken").handle_line(f"/ghibli {photo}")
    assert broken is not None and broken.job_id
    rt.store.input_path(broken.job_id).write_bytes(b"not a png")
    worker = spawn_worker(tmp_path / "worker.log", env=env)
    try:
        good = [
            ConsoleChat(core, f"console:g{i}").handle_line(f"/ghibli {photo}") for i in range(3)
        ]
        ids = [r.job_id for r in good if r and r.job_id]
        assert len(ids) == 3
        jobs = {j.id: j for j in _wait_finished(rt, [*ids, broken.job_id])}
    finally:
        stop_worker(worker)
    assert [jobs[i].status for i in ids] == ["done"] * 3, (tmp_path / "worker.log").read_text()
    assert jobs[broken.job_id].status == "failed"
    styled = np.asarray(Image.open(jobs[ids[0]].result_path), dtype=np.int16)
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
    assert styled.shape == original.shape and np.abs(styled - original).mean() > 5

    sender = ConsoleSender(echo=False)
    delivery = Delivery(rt, "console", sender)
    asyncio.run(delivery.deliver_once())
    asyncio.run(delivery.deliver_once())
    replies = {r.job_id: r for _, r in sender.sent}
    assert len(sender.sent) == 4 and set(replies) == {*ids, broken.job_id}
    assert replies[broken.job_id].image is None and "not counted" in replies[broken.job_id].text
    assert all(replies[i].image is not None for i in ids)
    with transaction(rt.engine) as s:
        used = {u.user_id: u.used for u in s.exec(select(Usage)).all()}
    assert used == {"console:broken": 0, "console:g0": 1, "console:g1": 1, "console:g2": 1}
