"""The safety check on SQLite and PostgreSQL: a held result, its appeal, an admin's review.

Deterministic flagging comes from fake scorers named the way a deployment names its own
("package.module:factory"); the transformers path loads a tiny, randomly initialised ViT
classifier saved to tmp_path, its bias set so one label wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from bots.console.adapter import ConsoleChat, ConsoleSender
from bots.core import Admin, AdminRequest, Command, Core, Delivery, Runtime
from storage.db import transaction
from storage.models import AuditEntry, Job, LedgerEntry, Usage
from tasks.backends.fakes import NullBackend
from tasks.batch import run_next
from tasks.safety import TransformersScorer, load_scorer, verdict
from tasks.stylize import WorkerContext
from tests.safetyutil import tiny_classifier

pytestmark = pytest.mark.sql

ADMIN = "telegram:1"
PERSON = "console:wu"


class FlagAll:
    def score(self, image: Image.Image) -> dict[str, float]:
        return {"safe": 0.05, "nsfw": 0.95}


class PassAll:
    def score(self, image: Image.Image) -> dict[str, float]:
        return {"safe": 0.9, "nsfw": 0.1}


class Broken:
    def score(self, image: Image.Image) -> dict[str, float]:
        raise RuntimeError("classifier crashed")


def _use(runtime: Runtime, scorer: str, *, check_input: bool = False) -> None:
    runtime.settings.safety_classifier = f"{__name__}:{scorer}"
    runtime.settings.safety_check_input = check_input
    runtime.settings.admins = (ADMIN,)


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[WorkerContext]:
    ctx = WorkerContext.build(runtime.settings, backend=NullBackend())
    yield ctx
    ctx.close()


def _styled(core: Core, ctx: WorkerContext, photo: Path) -> Job:
    reply = ConsoleChat(core, PERSON).handle_line(f"/ghibli {photo}")
    assert reply is not None and reply.job_id, reply
    run_next(ctx, f"task-{reply.job_id}")
    return _job(core.rt, reply.job_id)


def _job(rt: Runtime, job_id: str) -> Job:
    with transaction(rt.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _deliver(rt: Runtime) -> list[tuple[str, Path | None]]:
    sender = ConsoleSender(echo=False)
    delivery = Delivery(rt, "console", sender)
    asyncio.run(delivery.deliver_once())
    asyncio.run(delivery.deliver_once())  # a second pass sends nothing again
    return [(reply.text, reply.image) for _, reply in sender.sent]


def _charges(rt: Runtime) -> tuple[list[str], list[int]]:
    with transaction(rt.engine) as s:
        kinds = sorted(e.kind for e in s.exec(select(LedgerEntry)).all())
        return kinds, [u.used for u in s.exec(select(Usage)).all()]


def _admin(core: Core, text: str, actor: str = ADMIN) -> tuple[str, bool]:
    name, *args = text.split()
    reply, ok = Admin(core).run(AdminRequest(actor, "en", Command(name, tuple(args))))
    return reply.text, ok


def _audit(rt: Runtime) -> list[tuple[str, str, str | None, bool]]:
    with transaction(rt.engine) as s:
        rows = s.exec(select(AuditEntry).order_by(AuditEntry.id)).all()  # type: ignore[arg-type]
        return [(r.actor, r.action, r.target, r.allowed) for r in rows]


def _held(core: Core, worker: WorkerContext, photo: Path) -> Job:
    _use(core.rt, "FlagAll")
    job = _styled(core, worker, photo)
    assert (job.status, job.error_code, job.hold_label, job.hold_score) == (
        "failed",
        "held",
        "nsfw",
        0.95,
    )
    return job


def test_flagged_result_is_held_explained_and_not_charged(
    core: Core, worker: WorkerContext, photo: Path
) -> None:
    job = _held(core, worker, photo)
    assert job.held_at is not None and job.result_path and Path(job.result_path).is_file()
    with Image.open(job.result_path) as stored:
        assert stored.getexif() == {}  # kept as any result is: no EXIF
    assert _charges(core.rt) == (["refund", "reserve"], [0])
    [(text, image)] = _deliver(core.rt)
    assert image is None  # never a black image, never the held one
    assert "held back for a safety check" in text and "not charged" in text and "/appeal" in text


def test_appeal_then_release_delivers_the_stored_result_free(
    core: Core, worker: WorkerContext, photo: Path
) -> None:
    job = _held(core, worker, photo)
    _deliver(core.rt)
    chat = ConsoleChat(core, PERSON)
    assert "a person will review" in chat.handle_line("/appeal").text  # type: ignore[union-attr]
    assert "already asked" in chat.handle_line("/appeal").text  # type: ignore[union-attr]
    listed, _ = _admin(core, "appeals")
    assert f"{job.id}: {PERSON}, ghibli, nsfw 0.95, appealed" in listed
    assert _admin(core, f"release {job.id}") == (
        f"Released {job.id}: it will be sent to {PERSON}, free of charge.",
        True,
    )
    [(text, image)] = _deliver(core.rt)
    assert image == Path(job.result_path or "") and "released it" in text
    released = _job(core.rt, job.id)
    assert (released.status, released.review) == ("done", "released")
    assert released.delivered_at is not None
    assert _charges(core.rt) == (["refund", "reserve"], [0])  # a false positive costs nothing
    assert _audit(core.rt) == [(PERSON, "appeal", job.id, True), (ADMIN, "release", job.id, True)]
    assert "No held-back results" in _admin(core, "appeals")[0]
    stats, _ = _admin(core, "stats")
    assert "held 1, appealed 1, released 1, confirmed 0" in stats


def test_confirm_deletes_the_result_and_tells_the_person(
    core: Core, worker: WorkerContext, photo: Path
) -> None:
    job = _held(core, worker, photo)
    _deliver(core.rt)
    assert _admin(core, f"confirm {job.id}")[1]
    assert job.result_path and not Path(job.result_path).exists()
    confirmed = _job(core.rt, job.id)
    assert (confirmed.status, confirmed.review, confirmed.result_path) == (
        "failed",
        "confirmed",
        None,
    )
    [(text, image)] = _deliver(core.rt)
    assert image is None and "the safety check stands" in text and "not charged" in text
    assert _admin(core, f"release {job.id}") == (
        f"No held-back result {job.id} is waiting for review.",
        False,
    )
    late = ConsoleChat(core, PERSON).handle_line("/appeal")  # reviewed: nothing to appeal
    assert late is not None and late.text == "You have no held-back picture to appeal."
    assert "held 1, appealed 0, released 0, confirmed 1" in _admin(core, "stats")[0]
    assert _audit(core.rt) == [(ADMIN, "confirm", job.id, True)]


def test_a_non_admin_cannot_release(core: Core, worker: WorkerContext, photo: Path) -> None:
    job = _held(core, worker, photo)
    text, ok = _admin(core, f"release {job.id}", actor="telegram:666")
    assert not ok and "only admins" in text
    assert _job(core.rt, job.id).review is None
    assert _audit(core.rt) == [("telegram:666", "release", None, False)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("release", "Usage: /release <job id>"),
        ("release a b", "Usage: /release <job id>"),
        ("confirm ../etc/passwd", "Usage: /confirm <job id>"),
        ("appeals now", "Usage: /appeals"),
        ("release nosuchjob", "No held-back result nosuchjob is waiting for review."),
        ("confirm nosuchjob", "No held-back result nosuchjob is waiting for review."),
    ],
)
def test_malformed_or_unknown_gets_the_usage_line(core: Core, text: str, expected: str) -> None:
    _use(core.rt, "FlagAll")
    assert _admin(core, text) == (expected, False)


def test_appeal_with_nothing_held(core: Core) -> None:
    reply = ConsoleChat(core, PERSON).handle_line("/appeal")
    assert reply is not None and reply.text == "You have no held-back picture to appeal."


def test_a_passing_result_is_delivered_and_charged_as_usual(
    core: Core, worker: WorkerContext, photo: Path
) -> None:
    _use(core.rt, "PassAll", check_input=True)
    job = _styled(core, worker, photo)
    assert (job.status, job.held_at) == ("done", None)
    [(_, image)] = _deliver(core.rt)
    assert image == Path(job.result_path or "")
    assert _charges(core.rt) == (["commit", "reserve"], [1])


def test_input_check_refuses_a_flagged_photo_before_styling(
    core: Core, worker: WorkerContext, photo: Path
) -> None:
    _use(core.rt, "FlagAll", check_input=True)
    job = _styled(core, worker, photo)
    assert (job.status, job.error_code, job.result_path, job.held_at) == (
        "failed",
        "input_held",
        None,
        None,
    )
    assert _charges(core.rt) == (["refund", "reserve"], [0])
    [(text, image)] = _deliver(core.rt)
    assert image is None and "didn't pass the safety check" in text and "another photo" in text
    assert "No held-back results" in _admin(core, "appeals")[0]  # nothing to review


def test_a_broken_check_fails_the_job_refunded(
    core: Core, worker: WorkerContext, photo: Path
) -> None:
    _use(core.rt, "Broken")
    job = _styled(core, worker, photo)
    assert (job.status, job.error_code, job.result_path) == ("failed", "safety", None)
    assert _charges(core.rt) == (["refund", "reserve"], [0])


def test_threshold_and_labels() -> None:
    assert verdict({"nsfw": 0.8, "safe": 0.2}, ("nsfw",), 0.8) is not None  # at: held
    assert verdict({"nsfw": 0.79}, ("nsfw",), 0.8) is None
    assert verdict({"porn": 0.5, "hentai": 0.9}, ("porn", "hentai"), 0.8).label == "hentai"  # type: ignore[union-attr]
    assert verdict({"safe": 1.0}, ("nsfw",), 0.0) is None


def test_transformers_classifier_scores_every_label(tmp_path: Path) -> None:
    scorer = TransformersScorer(str(tiny_classifier(tmp_path / "unsafe", unsafe=True)))
    scores = scorer.score(Image.new("RGB", (64, 48), "white"))
    assert set(scores) == {"safe", "nsfw"} and scores["nsfw"] > 0.99


def test_tiny_classifier_holds_a_result_through_the_worker(
    core: Core, worker: WorkerContext, photo: Path, tmp_path: Path
) -> None:
    model = tiny_classifier(tmp_path / "tiny-nsfw", unsafe=True)
    core.rt.settings.safety_classifier = str(model)
    job = _styled(core, worker, photo)
    assert (job.status, job.error_code, job.hold_label) == ("failed", "held", "nsfw")
    assert load_scorer(str(model), "cpu") is load_scorer(str(model), "cpu")  # loaded once
