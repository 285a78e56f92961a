"""The core through the console adapter, on SQLite and PostgreSQL, with the publisher faked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bots.console.adapter import ConsoleChat
from bots.core import Core
from storage.db import transaction
from storage.models import Job, JobStatus, LedgerEntry, Usage, User
from tests.conftest import RecordingQueue, make_photo

pytestmark = pytest.mark.sql


def _rows(core: Core, model: type) -> list:
    with transaction(core.rt.engine) as s:
        return list(s.exec(select(model)).all())


def _used(core: Core, user_id: str) -> int:
    return sum(u.used for u in _rows(core, Usage) if u.user_id == user_id)


def _finish(core: Core, job_id: str) -> None:
    """Settle a job as the worker would, so the in-flight cap frees up."""
    from quota.lifecycle import finish_done

    with transaction(core.rt.engine) as s:
        job = s.get(Job, job_id)
        job.status = JobStatus.RUNNING
        s.flush()
        assert finish_done(s, job, "/tmp/x.jpg")


def test_photo_is_queued_and_charged_once(core: Core, queue: RecordingQueue, photo: Path) -> None:
    reply = ConsoleChat(core, "console:ana").handle_line(f"/ghibli {photo}")
    assert reply is not None and reply.job_id
    assert "#1" in reply.text
    assert queue.sent == [reply.job_id]
    [job] = _rows(core, Job)
    assert (job.status, job.user_id, job.style) == ("queued", "console:ana", "ghibli")
    assert core.rt.store.load_input(job.id).size == (160, 120)
    assert [e.kind for e in _rows(core, LedgerEntry)] == ["reserve"]
    assert _used(core, "console:ana") == 1


def test_fourth_request_of_the_day_is_refused_and_not_charged(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:bo")
    for _ in range(3):
        reply = chat.handle_line(f"/ghibli {photo}")
        assert reply is not None and reply.job_id
        _finish(core, reply.job_id)
    fourth = chat.handle_line(f"/ghibli {photo}")
    assert fourth is not None and fourth.job_id is None
    assert "used all 3 images" in fourth.text
    assert len(_rows(core, Job)) == 3
    assert _used(core, "console:bo") == 3


def test_in_flight_cap_refuses_a_second_job_while_the_first_waits(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:cy")
    assert chat.handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    second = chat.handle_line(f"/ghibli {photo}")
    assert second is not None and second.job_id is None
    assert "still being made" in second.text
    assert _used(core, "console:cy") == 1


def test_same_idempotency_key_is_one_job_and_one_charge(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:di")
    request = chat._request("ghibli", photo)
    first, again = core.submit(request), core.submit(request)
    assert first.job_id and again.job_id == first.job_id
    assert len(_rows(core, Job)) == 1
    assert _used(core, "console:di") == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "doesn't look like a photo"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00garbage", "couldn't read that image"),
    ],
    ids=["zero-bytes", "pdf", "corrupt-jpeg"],
)
def test_bad_input_gets_a_clear_reply_and_no_charge(
    core: Core, queue: RecordingQueue, tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "upload.bin"
    bad.write_bytes(content)
    reply = ConsoleChat(core, "console:ed").handle_line(f"/ghibli {bad}")
    assert reply is not None and expected in reply.text
    assert reply.job_id is None and not queue.sent
    assert _rows(core, Job) == [] and _used(core, "console:ed") == 0


def test_missing_file_is_a_polite_reply(core: Core, tmp_path: Path) -> None:
    reply = ConsoleChat(core, "console:fi").handle_line(f"/ghibli {tmp_path / 'nope.jpg'}")
    assert reply is not None and "couldn't get that file" in reply.text


def test_unknown_style_and_unknown_command(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:gu")
    assert "/ghibli" in chat.handle_line("/styles").text  # type: ignore[union-attr]
    assert "don't know that command" in chat.handle_line(f"/vaporwave {photo}").text  # type: ignore[union-attr]
    assert "send a photo" in chat.handle_line("/ghibli").text  # type: ignore[union-attr]
    assert _rows(core, Job) == []


def test_banned_user_is_refused_without_charge(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:hal")
    chat.handle_line("/quota")  # first contact creates the user
    with transaction(core.rt.engine) as s:
        user = s.get(User, "console:hal")
        user.banned = True
    reply = chat.handle_line(f"/ghibli {photo}")
    assert reply is not None and "can't use this bot" in reply.text
    assert _rows(core, Job) == []


def test_cancel_refunds_a_queued_job(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:ivy")
    job_id = chat.handle_line(f"/ghibli {photo}").job_id  # type: ignore[union-attr]
    reply = chat.handle_line("/cancel")
    assert reply is not None and reply.job_id == job_id
    [job] = _rows(core, Job)
    assert job.status == "cancelled"
    assert sorted(e.kind for e in _rows(core, LedgerEntry)) == ["refund", "reserve"]
    assert _used(core, "console:ivy") == 0
    assert "nothing waiting" in chat.handle_line("/cancel").text  # type: ignore[union-attr]
    assert chat.handle_line(f"/ghibli {photo}").job_id  # in-flight slot was released


def test_broker_down_refunds_and_says_so(core: Core, queue: RecordingQueue, photo: Path) -> None:
    queue.fail = True
    reply = ConsoleChat(core, "console:jo").handle_line(f"/ghibli {photo}")
    assert reply is not None and "couldn't queue" in reply.text
    [job] = _rows(core, Job)
    assert (job.status, job.error_code) == ("failed", "enqueue")
    assert job.delivered_at is not None  # that reply was its answer: no "failed" message later
    assert _used(core, "console:jo") == 0


def test_while_the_broker_is_down_requests_are_refused_before_anything_is_reserved(
    core: Core, queue: RecordingQueue, photo: Path
) -> None:
    from bots.core.breaker import Breaker

    clock = [0.0]
    core.rt.enqueue = Breaker(queue, cool_s=5.0, clock=lambda: clock[0])
    queue.fail = True
    chat = ConsoleChat(core, "console:lu")
    assert "couldn't queue" in chat.handle_line(f"/ghibli {photo}").text  # type: ignore[union-attr]
    assert "couldn't queue" in chat.handle_line(f"/arcane {photo}").text  # type: ignore[union-attr]
    assert len(_rows(core, Job)) == 1  # the second never reached the reservation
    queue.fail, clock[0] = False, 6.0  # the broker is back; the breaker lets one through
    reply = chat.handle_line(f"/arcane {photo}")
    assert reply is not None and reply.job_id and queue.sent == [reply.job_id]
    assert _used(core, "console:lu") == 1


def test_quota_status_shows_what_is_left(core: Core, photo: Path) -> None:
    chat = ConsoleChat(core, "console:kim")
    assert "3 left" in chat.handle_line("/quota").text  # type: ignore[union-attr]
    chat.handle_line(f"/ghibli {photo}")
    assert "Used today: 1 of 3; 2 left" in chat.handle_line("/quota").text  # type: ignore[union-attr]


def test_arabic_locale_replies_in_arabic(core: Core, tmp_path: Path) -> None:
    chat = ConsoleChat(core, "console:lina", locale="ar")
    assert "أرسل لي صورة" in chat.handle_line("/help").text  # type: ignore[union-attr]
    big = make_photo(tmp_path / "p.jpg")
    assert "ترتيبك" in chat.handle_line(f"/ghibli {big}").text  # type: ignore[union-attr]
