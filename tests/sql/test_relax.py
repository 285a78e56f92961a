"""The relax lane on SQLite and PostgreSQL: offered on a busy or paused refusal, taken with
/later, charged like any request, run only when no normal job waits, never counted ahead of a
normal request, capped per tier, shown in /quota, cancellable, and expired with a refund."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlmodel import select

from bots.console.adapter import ConsoleChat
from bots.core import Core, Delivery, Maintenance, Runtime
from bots.core.messages import duration, t
from quota.capacity import Load
from quota.controls import MODE_KEY, put
from quota.gauges import QueueGauges
from quota.relax import Pattern, relax_wait
from storage.db import transaction
from storage.jobs import claim_batch
from storage.models import Job, JobStatus, LedgerEntry, Offer, Usage, User
from tests.conftest import Clock, make_photo

pytestmark = pytest.mark.sql

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def photos(tmp_path: Path, n: int) -> list[Path]:
    return [make_photo(tmp_path / f"p{i}.jpg", size=(120 + i, 90)) for i in range(n)]


def rows(rt: Runtime, model: type) -> list:
    with transaction(rt.engine) as s:
        return list(s.exec(select(model)).all())


def used(rt: Runtime, user_id: str) -> int:
    return sum(u.used for u in rows(rt, Usage) if u.user_id == user_id)


def make_busy(runtime: Runtime, core: Core, pics: list[Path]) -> None:
    """Three queued normal jobs and a 10 s promise: a fourth person would wait 12 s."""
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=10)
    for i, pic in enumerate(pics[:3]):
        assert ConsoleChat(core, f"console:q{i}").handle_line(f"/ghibli {pic}").job_id  # type: ignore[union-attr]


def refused_then_later(core: Core, who: str, pic: Path) -> tuple[ConsoleChat, str]:
    chat = ConsoleChat(core, who)
    refused = chat.handle_line(f"/ghibli {pic}")
    assert refused is not None and refused.job_id is None and refused.offer_id
    assert t("later_offer_console", "en") in refused.text
    later = chat.handle_line("/later")
    assert later is not None and later.job_id, later
    return chat, later.job_id


def test_a_busy_refusal_offers_the_relax_lane_and_later_admits_it_charged_like_any_request(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 4)
    make_busy(runtime, core, pics)
    _, job_id = refused_then_later(core, "console:late", pics[3])

    with transaction(runtime.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None and (job.lane, job.status, job.style) == (
            "relax",
            "queued",
            "ghibli",
        )
        user = s.get(User, "console:late")
        assert user is not None and user.in_flight == 0  # relax jobs are bounded by their cap
        [offer] = s.exec(select(Offer)).all()
        assert (offer.job_id, offer.reason, offer.user_id) == (job_id, "busy", "console:late")
        reserved = s.exec(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).all()
        assert [e.kind for e in reserved] == ["reserve"]
    assert used(runtime, "console:late") == 1
    assert runtime.store.load_input(job_id).size == (123, 90)
    assert job_id in core.rt.enqueue.sent  # type: ignore[attr-defined]


def test_a_paused_free_tier_offers_it_too(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    with transaction(runtime.engine) as s:
        put(s, MODE_KEY, "paused-free", clock.now)
    [pic] = photos(tmp_path, 1)
    _, job_id = refused_then_later(core, "console:paused", pic)
    [offer] = rows(runtime, Offer)
    assert offer.reason == "paused" and offer.job_id == job_id


def test_relax_jobs_run_only_when_no_normal_job_waits_and_never_count_ahead(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 6)
    make_busy(runtime, core, pics)
    _, relax_id = refused_then_later(core, "console:late", pics[3])
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=600)
    clock.now = T0 + timedelta(seconds=5)
    # A normal request after the relax job: 3 normal ahead, the relax job not counted.
    after = ConsoleChat(core, "console:after").handle_line(f"/ghibli {pics[4]}")
    assert after is not None and after.job_id and "#4" in after.text

    order = []
    with transaction(runtime.engine) as s:
        while batch := claim_batch(
            s, task_id=f"t{len(order)}", worker_id="w", now=clock.now, limit=8
        ):
            order.append([(j.id == relax_id, j.lane) for j in batch])
    # One normal batch of the four normal jobs (the relax job does not ride along), then it.
    assert order == [[(False, "normal")] * 4, [(True, "relax")]]


def test_a_relax_job_does_not_hold_the_in_flight_cap_and_the_cap_is_per_tier(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 6)
    make_busy(runtime, core, pics)
    chat, _ = refused_then_later(core, "console:late", pics[3])
    # The free tier's relax cap is 1: the next refusal offers nothing.
    second = chat.handle_line(f"/ghibli {pics[4]}")
    assert second is not None and second.offer_id is None and second.job_id is None
    # An offer made before the cap was reached is refused politely when taken.
    runtime.tiers["free"] = replace(runtime.tiers["free"], relax_cap=2, max_wait_s=10)
    third = chat.handle_line(f"/ghibli {pics[5]}")
    assert third is not None and third.offer_id
    runtime.tiers["free"] = replace(runtime.tiers["free"], relax_cap=1)
    capped = chat.handle_line("/later")
    assert capped is not None and capped.text == t("later_cap", "en", n=1)
    assert used(runtime, "console:late") == 1
    # With room again, a normal request is admitted although the relax job still waits.
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=600)
    normal = chat.handle_line(f"/ghibli {pics[4]}")
    assert normal is not None and normal.job_id
    assert used(runtime, "console:late") == 2


def test_an_offer_is_taken_once_by_its_own_person_within_its_time(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 5)
    make_busy(runtime, core, pics)
    chat = ConsoleChat(core, "console:late")
    offer_id = chat.handle_line(f"/ghibli {pics[3]}").offer_id  # type: ignore[union-attr]
    assert offer_id
    read = lambda path: Path(path).read_bytes()  # noqa: E731
    stranger = ConsoleChat(core, "console:stranger").sender
    assert core.accept_later(stranger, offer_id, read).text == t("later_gone", "en")
    assert core.accept_later(chat.sender, "f" * 32, read).text == t("later_gone", "en")
    first = core.accept_later(chat.sender, offer_id, read)
    again = core.accept_later(chat.sender, offer_id, read)
    assert first.job_id and again.text == t("later_taken", "en") and again.job_id == first.job_id
    assert len([j for j in rows(runtime, Job) if j.lane == "relax"]) == 1
    assert used(runtime, "console:late") == 1
    # A second offer, taken after the offer's time is up.
    runtime.tiers["free"] = replace(runtime.tiers["free"], relax_cap=2)
    late = chat.handle_line(f"/ghibli {pics[4]}").offer_id  # type: ignore[union-attr]
    assert late
    clock.now = T0 + timedelta(minutes=runtime.settings.offer_ttl_minutes + 1)
    assert core.accept_later(chat.sender, late, read).text == t("later_gone", "en")
    assert used(runtime, "console:late") == 1


def test_quota_shows_it_cancel_stops_it_and_refunds(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 4)
    make_busy(runtime, core, pics)
    chat, job_id = refused_then_later(core, "console:late", pics[3])
    quota = chat.handle_line("/quota")
    assert quota is not None and "1 waiting for a quiet moment" in quota.text
    cancelled = chat.handle_line("/cancel")
    assert cancelled is not None and cancelled.job_id == job_id
    with transaction(runtime.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == JobStatus.CANCELLED
        kinds = [e.kind for e in s.exec(select(LedgerEntry).where(LedgerEntry.job_id == job_id))]
        assert sorted(kinds) == ["refund", "reserve"]
        assert s.get(User, "console:late").in_flight == 0  # type: ignore[union-attr]
    assert used(runtime, "console:late") == 0
    assert not runtime.store.input_path(job_id).exists()


def test_a_relax_job_not_done_in_time_expires_refunded_and_the_person_is_told(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 4)
    make_busy(runtime, core, pics)
    _, job_id = refused_then_later(core, "console:late", pics[3])
    maintenance = Maintenance(runtime)
    clock.now = T0 + timedelta(hours=runtime.settings.relax_ttl_hours) - timedelta(seconds=1)
    assert maintenance.expire_relax(clock.now) == 0
    clock.now += timedelta(seconds=2)
    assert maintenance.expire_relax(clock.now) == 1
    with transaction(runtime.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None and (job.status, job.error_code) == ("failed", "expired")
        normal = s.exec(select(Job).where(Job.lane == "normal")).all()
        assert {j.status for j in normal} == {"queued"}  # only the relax job expires
    assert used(runtime, "console:late") == 0
    assert not runtime.store.input_path(job_id).exists()
    reply = Delivery(runtime, "console", sender=None).reply_for(job)  # type: ignore[arg-type]
    assert reply.text == t("failed_expired", "en", ttl=duration(24 * 3600, "en"))


def test_the_estimate_walks_the_day_pattern_for_spare_capacity() -> None:
    # One worker at 3.6 s per image: 1000 images an hour.
    load = Load(workers=1, seconds_per_image=3.6, queued=0, running=0)
    now = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    # Busy now and until noon (1200/h asked), quiet from noon (400/h): 600 spare an hour.
    pattern = Pattern({h: 1200.0 if h < 12 else 400.0 for h in range(24)}, 1200.0)
    wait = relax_wait(pattern, load, now, need=300, horizon=timedelta(hours=24))
    assert wait == pytest.approx(2.5 * 3600 + 0.5 * 3600)  # noon, then half an hour
    # No quiet hour within the horizon: no promise.
    always = Pattern({h: 1500.0 for h in range(24)}, 1500.0)
    assert relax_wait(always, load, now, need=1, horizon=timedelta(hours=24)) is None
    # Quiet now: just the drain time of what is ahead at the spare rate.
    quiet = Pattern({}, 0.0)
    assert relax_wait(quiet, load, now, need=10, horizon=timedelta(hours=24)) == pytest.approx(36)
    # No history: the last minutes' demand stands for this hour and the next, no further.
    fresh = Pattern({}, 900.0)  # 100 spare an hour: 50 by 10:00, 100 more by 11:00
    assert relax_wait(fresh, load, now, need=100, horizon=timedelta(hours=24)) == pytest.approx(
        3600
    )
    assert relax_wait(fresh, load, now, need=200, horizon=timedelta(hours=24)) is None
    # A burst this hour that its history says ends within it: 1200 usual by 10:00, 1100 come
    # already, so the rest of the hour (500 images of room) expects 100 more.
    ending = Pattern({9: 1200.0, 10: 100.0}, 1500.0, this_hour=1100.0)
    assert relax_wait(ending, load, now, need=200, horizon=timedelta(hours=24)) == pytest.approx(
        0.5 * 3600 * 200 / 400
    )
    # A day already busier than its history: the last minutes' rate for the rest of the hour.
    bigger = Pattern({9: 1000.0, 10: 100.0}, 1500.0, this_hour=1100.0)
    assert relax_wait(bigger, load, now, need=200, horizon=timedelta(hours=24)) == pytest.approx(
        1800 + 3600 * 200 / 900
    )


def test_a_relax_job_gets_a_new_token_only_once_no_normal_job_waits(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 4)
    make_busy(runtime, core, pics)
    _, relax_id = refused_then_later(core, "console:late", pics[3])
    maintenance = Maintenance(runtime)
    clock.now = T0 + timedelta(hours=1)  # every token long overdue (the broker lost them)
    reissued = maintenance.overdue(clock.now)
    assert len(reissued) == 3 and relax_id not in reissued
    with transaction(runtime.engine) as s:
        claim_batch(s, task_id="t", worker_id="w", now=clock.now, limit=8)  # the normal three
    clock.now += timedelta(hours=1)
    assert maintenance.overdue(clock.now) == [relax_id]


def test_metrics_count_relax_jobs_apart_from_the_tiers_queues(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 4)
    make_busy(runtime, core, pics)
    refused_then_later(core, "console:late", pics[3])
    registry = CollectorRegistry()
    registry.register(QueueGauges(runtime.engine, runtime.settings, runtime.tiers, clock))
    text = generate_latest(registry).decode()
    assert 'stylebot_relax_jobs{status="queued"} 1.0' in text
    assert 'stylebot_jobs_queued{tier="free"} 3.0' in text
