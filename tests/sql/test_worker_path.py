"""The worker's job function and the delivery loop, without Celery: outcomes, refunds, one reply."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from bots.console.adapter import ConsoleChat, ConsoleSender
from bots.core import Core, Delivery, Runtime
from storage.db import transaction
from storage.jobs import claim_next
from storage.models import Job, LedgerEntry, Usage, WorkerBeat, utcnow
from tasks.backends import WarmupReport
from tasks.backends.fakes import NullBackend
from tasks.batch import run_next
from tasks.styles import StylePreset
from tasks.stylize import WorkerContext, start_heartbeat

pytestmark = pytest.mark.sql


class ExplodingBackend:
    name = "exploding"

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        raise RuntimeError("CUDA out of memory (simulated)")


def _submit(core: Core, photo: Path, user: str = "console:wu") -> str:
    reply = ConsoleChat(core, user).handle_line(f"/ghibli {photo}")
    assert reply is not None and reply.job_id, reply
    return reply.job_id


@pytest.fixture(autouse=True)
def _dispose_contexts() -> Iterator[None]:
    yield
    while _contexts:
        _contexts.pop().close()


_contexts: list[WorkerContext] = []


def _ctx(runtime: Runtime, backend: object) -> WorkerContext:
    ctx = WorkerContext.build(runtime.settings, backend=backend)  # type: ignore[arg-type]
    _contexts.append(ctx)
    return ctx


def _job(runtime: Runtime | WorkerContext, job_id: str) -> Job:
    with transaction(runtime.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def run_job(ctx: WorkerContext, job_id: str, task_id: str | None = None) -> str:
    """Process the next job as a Celery message would; check that it was the expected one
    (the first claimed: an overlapping worker's turn goes on to the jobs waiting after it)."""
    _, claimed = run_next(ctx, task_id or f"task-{job_id}")
    assert claimed[:1] in ([job_id], [])
    if not claimed:
        return "skipped"
    return _job(ctx, job_id).status


def _deliver(runtime: Runtime) -> ConsoleSender:
    sender = ConsoleSender(echo=False)
    delivery = Delivery(runtime, "console", sender)
    asyncio.run(delivery.deliver_once())
    asyncio.run(delivery.deliver_once())  # a second pass must send nothing again
    return sender


def test_success_stores_result_commits_and_replies_once(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    job_id = _submit(core, photo)
    assert run_job(_ctx(runtime, NullBackend()), job_id) == "done"
    job = _job(runtime, job_id)
    assert job.status == "done" and job.attempts == 1 and job.result_path
    assert not (runtime.store.root / "inputs" / f"{job_id}.png").exists()  # input deleted
    sender = _deliver(runtime)
    assert len(sender.sent) == 1
    target, reply = sender.sent[0]
    assert target.chat_id == "console:wu" and reply.image == Path(job.result_path)
    assert "2 left today" in reply.text
    with transaction(runtime.engine) as s:
        kinds = sorted(e.kind for e in s.exec(select(LedgerEntry)).all())
    assert kinds == ["commit", "reserve"]
    assert _job(runtime, job_id).delivered_at is not None


def test_backend_error_fails_refunds_and_replies_once(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    job_id = _submit(core, photo)
    assert run_job(_ctx(runtime, ExplodingBackend()), job_id) == "failed"
    job = _job(runtime, job_id)
    assert (job.status, job.error_code) == ("failed", "RuntimeError")
    with transaction(runtime.engine) as s:
        assert sorted(e.kind for e in s.exec(select(LedgerEntry)).all()) == ["refund", "reserve"]
        assert [u.used for u in s.exec(select(Usage)).all()] == [0]
    sender = _deliver(runtime)
    assert len(sender.sent) == 1
    assert "couldn't make that image" in sender.sent[0][1].text
    assert sender.sent[0][1].image is None


def test_redelivered_job_past_its_attempt_cap_fails_as_poison(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    job_id = _submit(core, photo)
    ctx = _ctx(runtime, NullBackend())
    with transaction(runtime.engine) as s:  # a worker claims it for message t1, then dies
        claimed = claim_next(s, task_id="t1", worker_id="w:1", now=utcnow())
        assert claimed is not None and claimed.id == job_id
        claimed.attempts = runtime.settings.max_attempts  # ... again and again
    assert run_job(ctx, job_id, task_id="t1") == "failed"  # the redelivered t1 gives up
    job = _job(runtime, job_id)
    assert (job.error_code, job.attempts) == ("attempts", runtime.settings.max_attempts + 1)
    with transaction(runtime.engine) as s:
        assert [u.used for u in s.exec(select(Usage)).all()] == [0]  # refunded


def test_redelivered_message_resumes_the_job_it_claimed(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    first = _submit(core, photo, user="console:r1")
    second = _submit(core, photo, user="console:r2")
    with transaction(runtime.engine) as s:
        claimed = claim_next(s, task_id="t9", worker_id="w:1", now=utcnow())
        assert claimed is not None and claimed.id == first
    # t9 comes back (its worker died): it must finish `first`, not take `second` with it.
    ctx = _ctx(runtime, NullBackend())
    ctx.settings = ctx.settings.model_copy(update={"overlap": False})  # one batch per token
    assert run_job(ctx, first, task_id="t9") == "done"
    assert _job(runtime, first).attempts == 2
    assert _job(runtime, second).status == "queued"


def test_an_overlapping_turn_resumes_its_batch_alone_then_takes_the_queue_in_new_batches(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    first = _submit(core, photo, user="console:o1")
    second = _submit(core, photo, user="console:o2")
    with transaction(runtime.engine) as s:
        claimed = claim_next(s, task_id="t9", worker_id="w:1", now=utcnow())
        assert claimed is not None and claimed.id == first
    _, ids = run_next(_ctx(runtime, NullBackend()), "t9")
    assert ids == [first, second]
    assert (_job(runtime, first).attempts, _job(runtime, first).claim_task) == (2, "t9")
    # Claimed ahead under its own id, so a redelivered t9 could never resume it as well.
    assert (_job(runtime, second).status, _job(runtime, second).claim_task) == ("done", "t9/1")


def test_cancelled_or_finished_job_is_not_run_again(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    job_id = _submit(core, photo)
    ctx = _ctx(runtime, NullBackend())
    assert run_job(ctx, job_id) == "done"
    assert run_job(ctx, job_id) == "skipped"  # a duplicate message after success
    other = _submit(core, photo, user="console:zed")
    ConsoleChat(core, "console:zed").handle_line("/cancel")
    assert run_job(ctx, other) == "skipped"


def test_two_delivery_loops_send_each_reply_once(runtime: Runtime, core: Core, photo: Path) -> None:
    ids = [_submit(core, photo, user=f"console:p{i}") for i in range(6)]
    ctx = _ctx(runtime, NullBackend())
    _, batch = run_next(ctx, "token-1")
    assert sorted(batch) == sorted(ids)  # one batch: same style, same size bucket
    a, b = ConsoleSender(echo=False), ConsoleSender(echo=False)

    async def both() -> None:
        await asyncio.gather(
            Delivery(runtime, "console", a).deliver_once(),
            Delivery(runtime, "console", b).deliver_once(),
        )

    asyncio.run(both())
    sent = [r.job_id for _, r in a.sent + b.sent]
    assert sorted(sent) == sorted(ids)


def test_a_failed_send_is_retried_later(runtime: Runtime, core: Core, photo: Path) -> None:
    job_id = _submit(core, photo)
    run_job(_ctx(runtime, NullBackend()), job_id)

    class FlakySender(ConsoleSender):
        async def send(self, target, reply):  # type: ignore[no-untyped-def]
            if not self.sent and not getattr(self, "failed_once", False):
                self.failed_once = True
                raise ConnectionError("platform 502")
            await super().send(target, reply)

    sender = FlakySender(echo=False)
    delivery = Delivery(runtime, "console", sender)
    assert asyncio.run(delivery.deliver_once()) == 0
    assert asyncio.run(delivery.deliver_once()) == 1
    assert len(sender.sent) == 1


class SlowStartBackend(NullBackend):
    """A backend whose warm-up waits until the test lets it finish."""

    def __init__(self) -> None:
        self.may_finish = threading.Event()
        self.warmed: list[str] = []

    def warm_up(self, styles: Iterable[StylePreset]) -> WarmupReport:
        self.may_finish.wait(10)
        self.warmed = [s.name for s in styles]
        return WarmupReport(
            models=1, load_s=0.1, warmup_s=0.2, calls=1, graphs=0, vram_peak_mib=None
        )


def _beats(ctx: WorkerContext) -> int:
    with transaction(ctx.engine) as s:
        return len(s.exec(select(WorkerBeat).where(WorkerBeat.id == ctx.worker_id)).all())


def test_a_worker_counts_as_live_only_after_its_warm_up(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    backend = SlowStartBackend()
    ctx = _ctx(runtime, backend)
    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="stylebot.worker"):
        thread = start_heartbeat(ctx, stop)
        try:
            time.sleep(0.3)
            assert _beats(ctx) == 0  # still warming: admission must not count it
            backend.may_finish.set()
            deadline = time.monotonic() + 10
            while _beats(ctx) == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            backend.may_finish.set()
            stop.set()
            thread.join(10)
    assert _beats(ctx) == 1
    assert backend.warmed == list(ctx.styles)
    assert any(
        "model_ready" in r.getMessage() and "warmup_s=0.2" in r.getMessage() for r in caplog.records
    )


def test_a_job_whose_row_is_briefly_locked_is_still_claimed_by_its_token(
    runtime: Runtime, core: Core, photo: Path
) -> None:
    """A bot writing down the status message holds the row for a moment; the worker's claim
    (SKIP LOCKED on PostgreSQL) must not give up on the job and waste its token."""
    import threading

    from sqlalchemy import text

    job_id = _submit(core, photo)
    ctx = _ctx(runtime, NullBackend())
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with runtime.engine.connect() as conn, conn.begin():
            conn.execute(text("UPDATE jobs SET status_ref = 'x' WHERE id = :id"), {"id": job_id})
            locked.set()
            release.wait(5)
            time.sleep(0.05)

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(5)
    release.set()  # the lock goes some 50 ms later, while the claim is looking
    try:
        assert run_job(ctx, job_id) == "done"
    finally:
        holder.join(5)
