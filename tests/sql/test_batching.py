"""Dynamic batching in the worker: one backend call per batch, each job settled on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.console.adapter import ConsoleChat
from bots.core import Core, Runtime
from storage.db import transaction
from storage.models import Job
from tasks.batch import run_next
from tasks.styles import StylePreset
from tasks.stylize import WorkerContext
from tests.conftest import make_photo

pytestmark = pytest.mark.sql


class RecordingBackend:
    """Returns inverted copies; records each call's batch; breaks on a 7-pixel-wide image."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        self.calls.append((style.name, len(images)))
        if any(img.width == 7 for img in images):
            raise ValueError("this image breaks the model")
        return [Image.eval(img, lambda v: 255 - v) for img in images]


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def ctx(runtime: Runtime, backend: RecordingBackend) -> Iterator[WorkerContext]:
    ctx = WorkerContext.build(runtime.settings, backend=backend)  # type: ignore[arg-type]
    yield ctx
    ctx.close()


def submit(core: Core, tmp_path: Path, n: int, style: str = "ghibli", size=(160, 120)) -> list[str]:
    ids = []
    for i in range(n):
        photo = make_photo(tmp_path / f"{style}{i}-{len(ids)}.jpg", size=(size[0] + i, size[1]))
        who = f"console:{style}-{size[0]}-{i}-{len(list(tmp_path.iterdir()))}"
        reply = ConsoleChat(core, who).handle_line(f"/{style} {photo}")
        assert reply is not None and reply.job_id, reply
        ids.append(reply.job_id)
    return ids


def jobs(runtime: Runtime, ids: list[str]) -> list[Job]:
    with transaction(runtime.engine) as s:
        return [s.get(Job, i) for i in ids]  # type: ignore[misc]


def test_one_call_per_batch_and_a_corrupt_input_fails_only_its_job(
    runtime: Runtime, core: Core, ctx: WorkerContext, backend: RecordingBackend, tmp_path: Path
) -> None:
    ids = submit(core, tmp_path, 4)
    runtime.store.input_path(ids[1]).write_bytes(b"\x89PNG garbage")
    outcome, claimed = run_next(ctx, "token")
    assert outcome == "processed" and sorted(claimed) == sorted(ids)
    assert backend.calls == [("ghibli", 3)]
    done = jobs(runtime, ids)
    assert [j.status for j in done] == ["done", "failed", "done", "done"]
    assert done[1].error_code == "input" and all(j.batch_size == 4 for j in done)
    assert core.allowance(done[1].user_id).used == 0 and core.allowance(done[0].user_id).used == 1


def test_styles_and_size_buckets_are_never_mixed(
    core: Core, ctx: WorkerContext, backend: RecordingBackend, tmp_path: Path
) -> None:
    submit(core, tmp_path, 2, "ghibli")
    submit(core, tmp_path, 2, "arcane")
    submit(core, tmp_path, 1, "ghibli", size=(90, 200))  # portrait: another bucket
    while run_next(ctx, f"t{len(backend.calls)}")[1]:
        pass
    assert backend.calls == [("ghibli", 2), ("arcane", 2), ("ghibli", 1)]


def test_batch_size_is_capped(
    runtime: Runtime, core: Core, ctx: WorkerContext, backend: RecordingBackend, tmp_path: Path
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"max_batch": 2})
    submit(core, tmp_path, 5)
    while run_next(ctx, f"t{len(backend.calls)}")[1]:
        pass
    assert [n for _, n in backend.calls] == [2, 2, 1]


@pytest.mark.parametrize(("wait_ms", "expected"), [(600, [2]), (0, [1, 1])])
def test_the_batch_waits_for_latecomers_only_as_long_as_configured(
    core: Core,
    ctx: WorkerContext,
    backend: RecordingBackend,
    tmp_path: Path,
    wait_ms: int,
    expected: list[int],
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"batch_wait_ms": wait_ms})
    submit(core, tmp_path, 1)
    turn = threading.Thread(target=run_next, args=(ctx, "t0"))
    turn.start()
    time.sleep(0.2)  # a second request arrives while the worker gathers
    submit(core, tmp_path, 1, size=(161, 120))
    turn.join()
    while run_next(ctx, f"t{len(backend.calls)}")[1]:
        pass
    assert [n for _, n in backend.calls] == expected


def test_a_batch_that_breaks_is_retried_one_by_one(
    runtime: Runtime, core: Core, ctx: WorkerContext, backend: RecordingBackend, tmp_path: Path
) -> None:
    ids = submit(core, tmp_path, 3)
    runtime.store.save_input(ids[2], Image.new("RGB", (7, 5)))  # the model chokes on this one
    run_next(ctx, "token")
    assert [n for _, n in backend.calls] == [3, 1, 1, 1]
    assert [j.status for j in jobs(runtime, ids)] == ["done", "done", "failed"]
    assert jobs(runtime, ids)[2].error_code == "ValueError"


def test_tiny_diffusers_pipeline_batch(
    runtime: Runtime, core: Core, tmp_path: Path, tiny_model: Path
) -> None:
    pytest.importorskip("diffusers")
    from tasks.backends import PipelineOptions
    from tasks.backends.diffusers import DiffusersBackend

    backend = DiffusersBackend(PipelineOptions(device="cpu"))
    ctx = WorkerContext.build(runtime.settings, backend=backend)
    tiny = StylePreset(
        "ghibli", {"en": "Ghibli"}, str(tiny_model), "ghibli style", steps=2, size=64
    )
    ctx.styles = {"ghibli": tiny}
    ids = submit(core, tmp_path, 3)
    runtime.store.input_path(ids[0]).write_bytes(b"")
    calls = []
    pipe = backend.pipeline(str(tiny_model))
    original = type(pipe).__call__
    type(pipe).__call__ = lambda self, *a, **k: (
        calls.append(len(k["image"])) or original(self, *a, **k)
    )  # type: ignore[method-assign]
    try:
        run_next(ctx, "token")
    finally:
        type(pipe).__call__ = original  # type: ignore[method-assign]
        ctx.engine.dispose()
    assert calls == [2]
    assert [j.status for j in jobs(runtime, ids)] == ["failed", "done", "done"]
    with Image.open(jobs(runtime, ids)[1].result_path) as result:  # type: ignore[arg-type]
        assert result.size == (161, 120)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    from tests.tiny_pipeline import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.mark.parametrize("overlap", [True, False])
def test_a_styles_own_max_batch_caps_its_claims(
    core: Core, ctx: WorkerContext, backend: RecordingBackend, tmp_path: Path, overlap: bool
) -> None:
    """An editing style that takes one photo per call (max_batch = 1) is claimed one job at a
    time; a style with no cap of its own still batches up to STYLEBOT_MAX_BATCH."""
    ctx.settings = ctx.settings.model_copy(update={"max_batch": 8, "overlap": overlap})
    ctx.styles = {**ctx.styles, "ghibli": replace(ctx.styles["ghibli"], max_batch=1)}
    submit(core, tmp_path, 3, "ghibli")
    submit(core, tmp_path, 3, "arcane")
    while run_next(ctx, f"t{len(backend.calls)}")[1]:
        pass
    assert sorted(backend.calls) == [("arcane", 3), ("ghibli", 1), ("ghibli", 1), ("ghibli", 1)]


def test_controlnet_and_edit_styles_through_a_worker(
    runtime: Runtime, core: Core, tmp_path: Path, tiny_model: Path
) -> None:
    """A ControlNet style batches its jobs into one call; an editing style of one photo per
    call is claimed and run one job at a time; every result has its photo's size."""
    pytest.importorskip("peft")
    from bench.pipelines import build_tiny_controlnet, build_tiny_pix2pix
    from tasks.backends import PipelineOptions
    from tasks.backends.diffusers import DiffusersBackend

    backend = DiffusersBackend(PipelineOptions(device="cpu"))
    ctx = WorkerContext.build(runtime.settings, backend=backend)
    base: dict[str, Any] = {"steps": 2, "size": 32, "negative_prompt": "photo"}
    ctx.styles = {
        "ghibli": StylePreset(
            "ghibli",
            {"en": "G"},
            str(tiny_model),
            "ghibli style",
            kind="controlnet",
            controlnet=str(build_tiny_controlnet(tmp_path / "cn")),
            **base,
        ),
        "arcane": StylePreset(
            "arcane",
            {"en": "A"},
            str(build_tiny_pix2pix(tmp_path / "p2p")),
            "make it arcane",
            kind="edit",
            pipeline="StableDiffusionInstructPix2PixPipeline",
            max_batch=1,
            **base,
        ),
    }
    ids = submit(core, tmp_path, 2, "ghibli") + submit(core, tmp_path, 2, "arcane")
    calls: list[tuple[str, int]] = []
    pipes = {name: backend.pipeline(style) for name, style in ctx.styles.items()}
    originals = {name: type(pipe).__call__ for name, pipe in pipes.items()}

    def spy(name: str) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append((name, len(kwargs["image"])))
            return originals[name](self, *args, **kwargs)

        return call

    for name, pipe in pipes.items():
        type(pipe).__call__ = spy(name)
    try:
        while run_next(ctx, f"t{len(calls)}")[1]:
            pass
    finally:
        for name, pipe in pipes.items():
            type(pipe).__call__ = originals[name]
        ctx.engine.dispose()
    assert sorted(calls) == [("arcane", 1), ("arcane", 1), ("ghibli", 2)]
    done = jobs(runtime, ids)
    assert [j.status for j in done] == ["done"] * 4
    for job, width in zip(done, (160, 161, 160, 161), strict=True):
        with Image.open(job.result_path) as result:  # type: ignore[arg-type]
            assert result.size == (width, 120)
