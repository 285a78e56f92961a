"""Metrics on real SQL: the queue's gauges match the jobs table, the admission counters match
what the core answered, and a worker turn records its batch, waits, images and failures."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func
from sqlmodel import select

from bots.console.adapter import ConsoleChat
from bots.core import Core, Maintenance, Runtime
from quota.controls import put
from quota.gauges import QueueGauges
from storage.db import transaction
from storage.jobs import claim_batch, ensure_user
from storage.metrics_endpoint import serve_metrics
from storage.models import Job, User
from tasks.backends.base import WarmupReport
from tasks.batch import run_next
from tasks.styles import StylePreset
from tasks.stylize import WorkerContext
from tests.conftest import make_photo
from tests.unit.test_metrics import PERSONAL, free_port

pytestmark = pytest.mark.sql


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def ask(core: Core, who: str, photo: Path, style: str = "ghibli") -> str | None:
    reply = ConsoleChat(core, who).handle_line(f"/{style} {photo}")
    assert reply is not None
    return reply.job_id


def person(runtime: Runtime, who: str, tier: str) -> str:
    with transaction(runtime.engine) as s:
        ensure_user(s, who, None, "en")
        s.get(User, who).tier = tier  # type: ignore[union-attr]
    return who


def test_queue_gauges_match_sql_and_admissions_are_counted(
    runtime: Runtime, core: Core, tmp_path: Path
) -> None:
    photos = [make_photo(tmp_path / f"p{i}.jpg", size=(120 + i, 90)) for i in range(8)]
    pro, plus = person(runtime, "console:pro", "pro"), person(runtime, "console:plus", "plus")
    before = {
        "admitted": value("stylebot_admissions_total", outcome="admitted", reason="queued"),
        "in_flight": value(
            "stylebot_admissions_total", outcome="refused", reason="quota_in_flight"
        ),
        "closed": value("stylebot_admissions_total", outcome="refused", reason="closed"),
    }
    for i in range(3):
        assert ask(core, f"console:free{i}", photos[i])
    assert ask(core, pro, photos[3]) and ask(core, pro, photos[4]) and ask(core, plus, photos[5])
    assert ask(core, "console:free0", photos[6]) is None  # free: one image in flight
    with transaction(runtime.engine) as s:
        put(s, "capacity_mode", "closed", runtime.clock())
    assert ask(core, "console:free1", photos[7]) is None
    with transaction(runtime.engine) as s:
        put(s, "capacity_mode", "auto", runtime.clock())
        claimed = claim_batch(s, task_id="t", worker_id="w", now=runtime.clock(), limit=1)
    assert [job.tier for job in claimed] == ["pro"]  # its head start put it first
    with transaction(runtime.engine) as s:
        rows = s.exec(select(Job.tier, Job.status, func.count()).group_by(Job.tier, Job.status))
        in_sql = {(tier, status): n for tier, status, n in rows}
    assert in_sql == {
        ("free", "queued"): 3,
        ("pro", "queued"): 1,
        ("pro", "running"): 1,
        ("plus", "queued"): 1,
    }

    gauges = QueueGauges(runtime.engine, runtime.settings, runtime.tiers, runtime.clock)
    settings = runtime.settings.model_copy(update={"metrics_port": free_port()})
    server = serve_metrics(settings, "bot", gauges)
    assert server is not None
    try:
        got = scrape(server.port)
    finally:
        server.close()

    for tier in ("free", "plus", "pro"):
        for status in ("queued", "running"):
            sample = (f"stylebot_jobs_{status}", (("tier", tier),))
            assert got[sample] == in_sql.get((tier, status), 0), sample
        promise = runtime.tiers[tier].max_wait_s
        assert got[("stylebot_tier_max_wait_seconds", (("tier", tier),))] == promise
    assert 0 <= got[("stylebot_queue_oldest_seconds", (("tier", "free"),))] < 120
    assert got[("stylebot_workers_live", ())] == 1  # the fixture's placeholder heartbeat
    assert got[("stylebot_capacity_mode", (("mode", "auto"),))] == 1
    assert got[("stylebot_capacity_mode", (("mode", "closed"),))] == 0
    assert got[("stylebot_free_daily_limit", ())] == runtime.settings.free_daily_limit
    assert got[("stylebot_sql_up", ())] == 1
    admitted = ("stylebot_admissions_total", (("outcome", "admitted"), ("reason", "queued")))
    assert got[admitted] == value(admitted[0], **dict(admitted[1])) == before["admitted"] + 6
    refused = [("quota_in_flight", before["in_flight"]), ("closed", before["closed"])]
    for reason, was in refused:
        assert value("stylebot_admissions_total", outcome="refused", reason=reason) == was + 1
    labels = {label for _, pairs in got for label, _ in pairs}
    assert not [label for label in labels if PERSONAL.search(label)], labels


def test_a_scrape_survives_the_database_going_away(runtime: Runtime) -> None:
    gauges = QueueGauges(runtime.engine, runtime.settings, runtime.tiers, runtime.clock)
    with transaction(runtime.engine) as s:
        s.connection().exec_driver_sql("DROP TABLE worker_beats")  # any SQL error will do
    families = {f.name: f for f in gauges.collect()}
    assert list(families) == ["stylebot_sql_up"]
    assert families["stylebot_sql_up"].samples[0].value == 0


class FakeGpuBackend:
    """Inverts images; warms up; reports CUDA memory as a GPU backend would."""

    name = "fake-gpu"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        self.calls.append(len(images))
        return [Image.eval(img, lambda v: 255 - v) for img in images]

    def warm_up(self, styles: Iterable[StylePreset]) -> WarmupReport:
        return WarmupReport(1, 0.01, 0.01, 1, 0, vram_peak_mib=None)

    def cuda_memory(self) -> tuple[int, int]:
        return 7 * 2**20, 9 * 2**20


@pytest.fixture
def ctx(runtime: Runtime) -> Iterator[WorkerContext]:
    ctx = WorkerContext.build(runtime.settings, backend=FakeGpuBackend())  # type: ignore[arg-type]
    yield ctx
    ctx.close()


def test_a_worker_turn_records_batches_waits_images_failures_and_redeliveries(
    runtime: Runtime, core: Core, ctx: WorkerContext, tmp_path: Path
) -> None:
    photos = [make_photo(tmp_path / f"w{i}.jpg", size=(130 + i, 90)) for i in range(4)]
    ids = [ask(core, f"console:w{i}", photo) for i, photo in enumerate(photos)]
    assert all(ids)
    # One job's worker "died" an hour ago: the reaper requeues it and its next claim is a
    # redelivery.
    with transaction(runtime.engine) as s:
        first = claim_batch(
            s, task_id="lost", worker_id="gone:1", now=runtime.clock() - timedelta(hours=1), limit=1
        )
    runtime.store.input_path(ids[3]).write_bytes(b"not a png")  # type: ignore[arg-type]
    names = [
        ("stylebot_jobs_reaped_total", {"outcome": "requeued"}),
        ("stylebot_redeliveries_total", {}),
        ("stylebot_images_total", {"tier": "free", "style": "ghibli"}),
        ("stylebot_job_wait_seconds_count", {"tier": "free"}),
        ("stylebot_job_service_seconds_count", {"tier": "free"}),
        ("stylebot_job_failures_total", {"reason": "input"}),
        ("stylebot_batch_size_count", {}),
        ("stylebot_batch_size_sum", {}),
        ("stylebot_worker_warmup_seconds_count", {}),
    ]
    before = [value(name, **labels) for name, labels in names]
    assert Maintenance(runtime).reap() == [first[0].id]
    ctx.warm_up()
    assert run_next(ctx, "token")[0] == "processed"
    after = [value(name, **labels) for name, labels in names]
    delta = {name: a - b for (name, _), a, b in zip(names, after, before, strict=True)}
    assert ctx.backend.calls == [3]  # type: ignore[attr-defined]
    assert delta == {
        "stylebot_jobs_reaped_total": 1,
        "stylebot_redeliveries_total": 1,
        "stylebot_images_total": 3,
        "stylebot_job_wait_seconds_count": 3,
        "stylebot_job_service_seconds_count": 3,
        "stylebot_job_failures_total": 1,
        "stylebot_batch_size_count": 1,
        "stylebot_batch_size_sum": 3,
        "stylebot_worker_warmup_seconds_count": 1,
    }
    assert value("stylebot_gpu_memory_used_bytes") == 7 * 2**20
    assert value("stylebot_gpu_memory_peak_bytes") == 9 * 2**20
    with transaction(runtime.engine) as s:
        statuses = sorted(s.get(Job, i).status for i in ids)  # type: ignore[union-attr]
    assert statuses == ["done", "done", "done", "failed"]
