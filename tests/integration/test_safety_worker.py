"""The safety check through a real `stylebot worker` process: a tiny classifier holds a result,
the person is told and not charged, an admin's /release delivers it, still free."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlmodel import select

from bots.console.adapter import ConsoleChat, ConsoleSender
from bots.core import Admin, AdminRequest, Command, Core, Delivery, Runtime
from storage.db import transaction
from storage.models import FINISHED, Job, LedgerEntry, Usage
from tasks.worker import spawn_worker, stop_worker
from tests.conftest import make_photo, pretend_a_worker_is_live
from tests.safetyutil import tiny_classifier
from tests.services import live_stack

pytestmark = pytest.mark.integration


def _finished(rt: Runtime, job_id: str, limit_s: float = 90) -> Job:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with transaction(rt.engine) as s:
            job = s.get(Job, job_id)
        if job is not None and job.status in FINISHED:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job not finished in {limit_s} s")


def _deliver(rt: Runtime) -> list[tuple[str, Path | None]]:
    sender = ConsoleSender(echo=False)
    delivery = Delivery(rt, "console", sender)
    asyncio.run(delivery.deliver_once())
    return [(reply.text, reply.image) for _, reply in sender.sent]


def test_held_result_is_explained_free_and_released_by_an_admin(tmp_path: Path) -> None:
    model = tiny_classifier(tmp_path / "classifier", unsafe=True)
    env = {"STYLEBOT_BACKEND": "classic", "STYLEBOT_SAFETY_CLASSIFIER": str(model)}
    with live_stack(tmp_path, **env) as (rt, worker_env):
        pretend_a_worker_is_live(rt)
        core = Core(rt)
        photo = make_photo(tmp_path / "in.jpg")
        reply = ConsoleChat(core, "console:held").handle_line(f"/ghibli {photo}")
        assert reply is not None and reply.job_id
        worker = spawn_worker(tmp_path / "worker.log", env=worker_env)
        try:
            job = _finished(rt, reply.job_id)
        finally:
            stop_worker(worker)
        log = (tmp_path / "worker.log").read_text()
        assert (job.status, job.error_code, job.hold_label) == ("failed", "held", "nsfw"), log
        [(text, image)] = _deliver(rt)
        assert image is None and "held back" in text and "/appeal" in text

        rt.settings.admins = ("telegram:1",)
        request = AdminRequest("telegram:1", "en", Command("release", (job.id,)))
        assert Admin(core).run(request)[1]
        [(text, image)] = _deliver(rt)
        assert image == Path(job.result_path or "") and image.is_file() and "released" in text
        with transaction(rt.engine) as s:
            kinds = sorted(e.kind for e in s.exec(select(LedgerEntry)).all())
            used = [u.used for u in s.exec(select(Usage)).all()]
        assert (kinds, used) == (["refund", "reserve"], [0])
