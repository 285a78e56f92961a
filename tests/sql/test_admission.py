"""Admission, queue order and auto surge on SQLite and PostgreSQL, with a controllable clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import delete, select

from bots.console.adapter import ConsoleChat
from bots.core import Core, Runtime, progress
from bots.core.messages import t
from quota import surge
from quota.controls import MODE_KEY, put, surge_level
from quota.lifecycle import finish_done
from storage.db import transaction
from storage.jobs import claim_next
from storage.models import AuditEntry, Job, Rejection, User, WorkerBeat
from tests.conftest import Clock, make_photo

pytestmark = pytest.mark.sql

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def photos(tmp_path: Path, n: int) -> list[Path]:
    return [make_photo(tmp_path / f"p{i}.jpg", size=(120 + i, 90)) for i in range(n)]


def set_tier(runtime: Runtime, user_id: str, tier: str) -> None:
    with transaction(runtime.engine) as s:
        s.get(User, user_id).tier = tier  # type: ignore[union-attr]


def test_busy_refusal_carries_an_estimate_and_charges_nothing(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=10)
    # assumed 3 s per image, one live worker: the 4th person would wait 4 x 3 s = 12 s > 10 s.
    pics = photos(tmp_path, 4)
    for i, pic in enumerate(pics[:3]):
        assert ConsoleChat(core, f"console:q{i}").handle_line(f"/ghibli {pic}").job_id  # type: ignore[union-attr]
    busy = ConsoleChat(core, "console:late").handle_line(f"/ghibli {pics[3]}")
    assert busy is not None and not busy.job_id
    assert "try again in about 1 minute" in busy.text and "Nothing was counted" in busy.text
    assert core.allowance("console:late").used == 0
    with transaction(runtime.engine) as s:
        assert [(r.user_id, r.reason) for r in s.exec(select(Rejection)).all()] == [
            ("console:late", "busy")
        ]


def test_while_their_image_is_still_being_made_they_hear_that_not_busy(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=10)
    pics = photos(tmp_path, 4)
    mine = ConsoleChat(core, "console:eager")
    assert mine.handle_line(f"/ghibli {pics[0]}").job_id  # type: ignore[union-attr]
    for i, pic in enumerate(pics[1:3]):  # the queue fills up behind it
        assert ConsoleChat(core, f"console:r{i}").handle_line(f"/ghibli {pic}").job_id  # type: ignore[union-attr]
    again = mine.handle_line(f"/arcane {pics[3]}")
    assert again is not None and not again.job_id
    assert again.text == t("quota_in_flight", "en")  # not "busy, try again in a minute"
    with transaction(runtime.engine) as s:
        reasons = [r.reason for r in s.exec(select(Rejection)).all()]
    assert reasons == ["quota_in_flight"]


def test_no_live_worker_means_an_honest_refusal(runtime: Runtime, core: Core, photo: Path) -> None:
    with transaction(runtime.engine) as s:
        s.execute(delete(WorkerBeat))
    reply = ConsoleChat(core, "console:early").handle_line(f"/ghibli {photo}")
    assert reply is not None and "No image makers are online" in reply.text and not reply.job_id


def test_workers_that_start_on_demand_get_the_request_queued_with_the_cold_start_in_its_wait(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    """Scale to zero (STYLEBOT_COLD_START_S): no worker is live, yet the request is queued, so
    the autoscaler that counts queued jobs starts one; the wait told includes the start."""
    with transaction(runtime.engine) as s:
        s.execute(delete(WorkerBeat))
    runtime.settings = runtime.settings.model_copy(update={"cold_start_s": 240.0})
    runtime.tiers["free"] = replace(runtime.tiers["free"], max_wait_s=245)
    first, second = photos(tmp_path, 2)
    queued = ConsoleChat(core, "console:cold1").handle_line(f"/ghibli {first}")
    assert queued is not None and queued.job_id
    with transaction(runtime.engine) as s:
        assert s.get(Job, queued.job_id).status == "queued"  # type: ignore[union-attr]
    assert "4 minutes" in queued.text  # 240 s to start + 3 s for the image: 243 s
    # The next one would wait 240 + 2 x 3 s = 246 s > 245 s: busy, told when, charged nothing.
    busy = ConsoleChat(core, "console:cold2").handle_line(f"/ghibli {second}")
    assert busy is not None and not busy.job_id and "try again in about" in busy.text
    assert core.allowance("console:cold2").used == 0


def test_paid_tiers_go_first_but_an_old_free_job_is_not_passed(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 4)
    submitted = {}
    for name, tier, minutes in [("old", "free", 0), ("new", "free", 6), ("pro", "pro", 6)]:
        clock.now = T0 + timedelta(minutes=minutes)
        ConsoleChat(core, f"console:{name}").handle_line("/quota")
        set_tier(runtime, f"console:{name}", tier)
        reply = ConsoleChat(core, f"console:{name}").handle_line(f"/ghibli {pics[len(submitted)]}")
        submitted[name] = reply.job_id  # type: ignore[union-attr]
    order = []
    with transaction(runtime.engine) as s:
        while (
            job := claim_next(s, task_id=f"t{len(order)}", worker_id="w", now=clock.now)
        ) is not None:
            order.append(job.user_id.split(":")[1])
    # pro has a 5-minute head start: ahead of the free job that came with it, but the free job
    # that had already waited 6 minutes keeps its place.
    assert order == ["old", "pro", "new"]


def test_position_and_eta_follow_the_queue(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    pics = photos(tmp_path, 2)
    first = ConsoleChat(core, "console:a").handle_line(f"/ghibli {pics[0]}").job_id  # type: ignore[union-attr]
    clock.now += timedelta(seconds=1)
    second = ConsoleChat(core, "console:b").handle_line(f"/ghibli {pics[1]}")
    assert second is not None and "#2" in second.text
    assert progress(core, second.job_id).position == 2  # type: ignore[arg-type]
    with transaction(runtime.engine) as s:
        job = claim_next(s, task_id="t", worker_id="w", now=clock.now)
        assert job is not None and job.id == first
    p = progress(core, second.job_id)  # type: ignore[arg-type]
    assert p.position == 1 and p.eta_s is not None and 3 <= p.eta_s <= 6


def test_same_photo_same_style_same_day_is_answered_from_the_stored_result(
    runtime: Runtime, core: Core, clock: Clock, photo: Path
) -> None:
    chat = ConsoleChat(core, "console:again")
    job_id = chat.handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    with transaction(runtime.engine) as s:
        job = claim_next(s, task_id="t", worker_id="w", now=clock.now)
        assert job is not None
        runtime.store.save_result(job.id, runtime.store.load_input(job.id))
        finish_done(s, job, str(runtime.store.result_path(job.id)), now=clock.now)
    again = chat.handle_line(f"/ghibli {photo}")
    assert again is not None and again.job_id == job_id and again.image is not None
    assert "not counted" in again.text
    assert core.allowance("console:again").used == 1
    other_style = chat.handle_line(f"/arcane {photo}")
    assert other_style is not None and other_style.job_id != job_id  # a new job, charged


def test_auto_surge_steps_the_free_limit_down_and_back_up(
    runtime: Runtime, core: Core, clock: Clock, tmp_path: Path
) -> None:
    settings, free = runtime.settings, runtime.tiers["free"]
    with transaction(runtime.engine) as s:
        put(s, MODE_KEY, "auto", clock.now)
    pics = photos(tmp_path, 120)
    for i, pic in enumerate(pics):  # 120 waiting x 3 s on one worker: a 6-minute free wait
        assert ConsoleChat(core, f"console:s{i}").handle_line(f"/ghibli {pic}").job_id  # type: ignore[union-attr]

    def tick(minutes: float) -> int:
        clock.now += timedelta(minutes=minutes)
        with transaction(runtime.engine) as s:
            s.get(WorkerBeat, "test:placeholder").last_seen = clock.now  # type: ignore[union-attr]
        with transaction(runtime.engine) as s:
            surge.tick(s, free, clock.now, settings)
            return surge_level(s)

    assert [tick(1) for _ in range(6)] == [0, 0, 1, 1, 2, 2]  # the 2-minute window, twice
    assert (
        "free limit is 1 a day for now"
        in ConsoleChat(core, "console:s0").handle_line("/quota").text
    )  # type: ignore[union-attr]
    with transaction(runtime.engine) as s:
        for job in s.exec(select(Job).where(Job.status == "queued")).all():
            job.status = "cancelled"  # the crowd has gone
    assert [tick(1) for _ in range(6)] == [2, 2, 1, 1, 0, 0]
    with transaction(runtime.engine) as s:
        steps = [(a.before, a.after) for a in s.exec(select(AuditEntry)).all() if a.actor == "auto"]
    assert steps == [("0", "1"), ("1", "2"), ("2", "1"), ("1", "0")]
