"""The overlapping worker: while the GPU styles batch N, batch N+1 is claimed and prepared and
batch N-1 stored and settled on other threads; every job still settles on its own."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from bots.core import Core, Runtime
from storage.db import transaction
from storage.models import Job, JobStatus
from tasks.backends import Staged
from tasks.batch import run_next
from tasks.styles import StylePreset
from tasks.stylize import WorkerContext
from tests.sql.test_batching import jobs, submit

pytestmark = pytest.mark.sql


class TimedStages:
    """A staged fake: sleeps per stage and records, per pipeline call, the thread each stage
    ran on and an Event set when the call began."""

    name = "timed"

    def __init__(self, run_s: float = 0.05, fail_first: BaseException | None = None) -> None:
        self.run_s = run_s
        self.fail_first = fail_first
        self.started = [threading.Event() for _ in range(16)]  # one per pipeline call
        self.calls = 0
        self.threads: dict[str, set[str]] = {"prepare": set(), "run": set(), "finish": set()}

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        return self.finish(self.run(self.prepare(images, style)))

    def prepare(self, images: Sequence[Image.Image], style: StylePreset) -> Any:
        self.threads["prepare"].add(threading.current_thread().name)
        return [img.convert("RGB") for img in images]

    def run(self, prepared: Any) -> Any:
        self.threads["run"].add(threading.current_thread().name)
        self.started[self.calls].set()
        self.calls += 1
        if self.fail_first is not None and self.calls == 1:
            raise self.fail_first
        time.sleep(self.run_s)
        return [Image.eval(img, lambda v: 255 - v) for img in prepared]

    def finish(self, raw: Any) -> list[Image.Image]:
        self.threads["finish"].add(threading.current_thread().name)
        return list(raw)


@pytest.fixture
def make_ctx(runtime: Runtime) -> Iterator[Any]:
    made: list[WorkerContext] = []

    def make(backend: TimedStages, **settings: Any) -> WorkerContext:
        base = {"max_batch": 2, "batch_wait_ms": 0, **settings}
        ctx = WorkerContext.build(runtime.settings.model_copy(update=base), backend=backend)  # type: ignore[arg-type]
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def statuses(runtime: Runtime, ids: list[str]) -> list[str]:
    return [job.status for job in jobs(runtime, ids)]


@pytest.mark.parametrize("overlap", [True, False])
def test_a_slow_store_no_longer_delays_the_next_batch(
    runtime: Runtime, core: Core, tmp_path: Path, make_ctx: Any, overlap: bool
) -> None:
    """Each result's store waits until the next batch's pipeline call has begun. With overlap
    it has begun at once: storage runs beside the GPU. Without, the next call cannot begin
    before the store returns, so each wait runs out (deterministic either way)."""
    backend = TimedStages()
    assert isinstance(backend, Staged)
    ctx = make_ctx(backend, overlap=overlap)
    ids = submit(core, tmp_path, 6)  # three batches of two
    real_save = ctx.store.save_result
    order = itertools.count()
    next_call_had_begun: list[bool] = []

    def slow_save(job_id: str, image: Image.Image) -> Path:
        later = next(order) // 2 + 1  # the call after this result's batch
        if later < 3:
            next_call_had_begun.append(backend.started[later].wait(5.0 if overlap else 0.3))
        return real_save(job_id, image)

    ctx.store.save_result = slow_save  # type: ignore[method-assign]
    turns = 0
    while run_next(ctx, f"token-{turns}")[1]:
        turns += 1
    assert statuses(runtime, ids) == ["done"] * 6
    assert backend.calls == 3
    if overlap:
        assert turns == 1  # one token's turn styled all three batches back to back
        assert next_call_had_begun == [True] * 4
        assert backend.threads == {
            "prepare": {"MainThread", "stylebot-prepare_0"},  # the turn's first, then ahead
            "run": {"stylebot-gpu_0"},  # every call on the thread warm-up used
            "finish": {"stylebot-finish_0"},
        }
    else:
        assert turns == 3
        assert next_call_had_begun == [False] * 4
        # One stylize call does all three stages, on the GPU thread, between the stores.
        assert backend.threads == {k: {"stylebot-gpu_0"} for k in ("prepare", "run", "finish")}


def test_measured_speed_counts_the_styling_not_the_wait_for_the_gpu(
    runtime: Runtime, core: Core, tmp_path: Path, make_ctx: Any
) -> None:
    backend = TimedStages(run_s=0.3)
    ctx = make_ctx(backend)
    ids = submit(core, tmp_path, 4)
    run_next(ctx, "token")
    second = jobs(runtime, ids)[2:]  # claimed ahead, while the first batch was styled
    assert {job.claim_task for job in second} == {"token/1"}
    for job in second:  # started_at: its own call's start, not the claim a batch earlier
        assert job.started_at is not None and job.finished_at is not None
        assert (job.finished_at - job.started_at).total_seconds() < 0.3 + 0.25


def test_a_turn_stops_claiming_at_half_the_soft_time_limit(
    runtime: Runtime, core: Core, tmp_path: Path, make_ctx: Any
) -> None:
    backend = TimedStages(run_s=0.4)
    ctx = make_ctx(backend, task_soft_time_limit=1)  # the turn claims ahead only in 0.5 s
    ids = submit(core, tmp_path, 10)
    _, first_turn = run_next(ctx, "token-a")
    assert 4 <= len(first_turn) <= 6  # 2 or 3 batches, never the five waiting
    left = [job.id for job in jobs(runtime, ids) if job.status == JobStatus.QUEUED]
    assert sorted(left) == sorted(set(ids) - set(first_turn))
    run_next(ctx, "token-b")  # the next token carries on
    assert statuses(runtime, ids) == ["done"] * 10


def test_soft_time_limit_fails_the_batch_and_gives_back_what_was_claimed_ahead(
    runtime: Runtime, core: Core, tmp_path: Path, make_ctx: Any
) -> None:
    backend = TimedStages(fail_first=SoftTimeLimitExceeded())
    ctx = make_ctx(backend)
    ids = submit(core, tmp_path, 4)
    run_next(ctx, "token")
    rows = jobs(runtime, ids)
    assert [j.status for j in rows] == ["failed", "failed", "queued", "queued"]
    assert {j.error_code for j in rows[:2]} == {"timeout"}
    assert all(j.claim_task is None and j.worker_id is None for j in rows[2:])
    assert core.allowance(rows[0].user_id).used == 0  # refunded
    run_next(ctx, "token-2")
    assert statuses(runtime, ids)[2:] == ["done", "done"]


def test_a_failing_batch_is_split_and_only_the_breaking_job_fails(
    runtime: Runtime, core: Core, tmp_path: Path, make_ctx: Any
) -> None:
    backend = TimedStages(fail_first=ValueError("this batch breaks the model"))
    ctx = make_ctx(backend)
    ids = submit(core, tmp_path, 4)
    run_next(ctx, "token")
    # The first call broke; each of its jobs was styled again alone and succeeded.
    assert statuses(runtime, ids) == ["done"] * 4
    with transaction(runtime.engine) as s:
        assert all(s.get(Job, i).result_path for i in ids)  # type: ignore[union-attr]


def test_a_store_that_breaks_fails_its_job_and_the_turn_goes_on(
    runtime: Runtime, core: Core, tmp_path: Path, make_ctx: Any
) -> None:
    ctx = make_ctx(TimedStages())
    ids = submit(core, tmp_path, 4)
    real_save = ctx.store.save_result

    def save(job_id: str, image: Image.Image) -> Path:
        if job_id == ids[1]:
            raise OSError("disk full")
        return real_save(job_id, image)

    ctx.store.save_result = save  # type: ignore[method-assign]
    run_next(ctx, "token")
    rows = jobs(runtime, ids)
    assert [j.status for j in rows] == ["done", "failed", "done", "done"]
    assert rows[1].error_code == "store" and core.allowance(rows[1].user_id).used == 0
    assert not runtime.store.input_path(ids[1]).exists()  # the photo is deleted either way
