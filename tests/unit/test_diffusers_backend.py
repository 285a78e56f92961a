"""DiffusersBackend end to end on a tiny random SD1.5-architecture pipeline loaded from disk.

The pipeline is built offline (tests/tiny_pipeline.py), saved with save_pretrained and loaded
by the real backend through from_pretrained(<path>): the hub-id code path minus the download.
Runs on CPU in seconds; the gpu-marked test repeats it on CUDA in fp16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tasks.styles import StylePreset

pytestmark = pytest.mark.unit

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tasks.backends.diffusers import DiffusersBackend, min_steps, work_size  # noqa: E402
from tests.tiny_pipeline import build_tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def cpu_backend() -> DiffusersBackend:
    # Module-scoped so the tests share one loaded pipeline, as a worker would.
    return DiffusersBackend(device="cpu")


def preset(model: Path, size: int = 64) -> StylePreset:
    return StylePreset(
        name="tiny",
        display={"en": "Tiny"},
        model=str(model),
        prompt="ghibli style, a landscape",
        negative_prompt="photo",
        strength=0.5,
        steps=4,
        guidance=7.5,
        size=size,
    )


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def test_outputs_rgb_at_input_sizes(cpu_backend: DiffusersBackend, tiny_model: Path) -> None:
    srcs = [photo(96, 64), photo(40, 72, seed=1).convert("L")]
    outs = cpu_backend.stylize(srcs, preset(tiny_model))
    assert len(outs) == 2
    assert [(o.mode, o.size) for o in outs] == [("RGB", (96, 64)), ("RGB", (40, 72))]
    for src, out in zip(srcs, outs, strict=True):
        assert not np.array_equal(np.asarray(src.convert("RGB")), np.asarray(out))


def test_batch_is_one_pipeline_call(
    cpu_backend: DiffusersBackend, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = cpu_backend.pipeline(str(tiny_model))
    real_call = type(pipe).__call__
    batch_sizes: list[int] = []

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        batch_sizes.append(len(kwargs["prompt"]))
        return real_call(self, *args, **kwargs)

    # Python looks __call__ up on the type, so the spy goes on the pipeline's class.
    monkeypatch.setattr(type(pipe), "__call__", spy)
    outs = cpu_backend.stylize([photo(64, 64), photo(64, 48, seed=1)], preset(tiny_model))
    assert batch_sizes == [2]
    assert len(outs) == 2


def test_pipeline_loaded_once_per_model(cpu_backend: DiffusersBackend, tiny_model: Path) -> None:
    pipe = cpu_backend.pipeline(str(tiny_model))
    cpu_backend.stylize([photo(32, 32)], preset(tiny_model, size=32))
    assert cpu_backend.pipeline(str(tiny_model)) is pipe
    assert pipe.dtype == torch.float32  # CPU: no fast fp16 kernels


def test_seeded_and_reproducible(cpu_backend: DiffusersBackend, tiny_model: Path) -> None:
    src = photo(64, 64)
    a, b = (cpu_backend.stylize([src], preset(tiny_model))[0] for _ in range(2))
    assert a.tobytes() == b.tobytes()


def test_empty_batch_loads_nothing(tiny_model: Path) -> None:
    backend = DiffusersBackend(device="cpu")
    assert backend.stylize([], preset(tiny_model)) == []
    assert backend._pipelines == {}


@pytest.mark.parametrize(
    ("size", "long_side", "expected"),
    [
        ((1000, 500), 512, (512, 256)),
        ((500, 1000), 512, (256, 512)),
        ((500, 333), 512, (512, 344)),
        ((64, 64), 512, (512, 512)),  # small photos are scaled up to the model's size
        ((4000, 10), 512, (512, 8)),
    ],
)
def test_work_size(size: tuple[int, int], long_side: int, expected: tuple[int, int]) -> None:
    assert work_size(size, long_side) == expected


def test_min_steps_leaves_one_denoising_step() -> None:
    assert min_steps(30, 0.6) == 30
    assert min_steps(2, 0.1) == 10
    assert int(min_steps(1, 0.3) * 0.3) >= 1


def test_cuda_without_cuda_fails_early() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        DiffusersBackend(device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_pipeline_on_cuda_fp16(tiny_model: Path) -> None:
    backend = DiffusersBackend(device="auto")
    srcs = [photo(96, 64), photo(64, 96, seed=1)]
    outs = backend.stylize(srcs, preset(tiny_model))
    pipe = backend.pipeline(str(tiny_model))
    assert (pipe.device.type, pipe.dtype) == ("cuda", torch.float16)
    assert [(o.mode, o.size) for o in outs] == [("RGB", (96, 64)), ("RGB", (64, 96))]
    assert all(np.asarray(o).std() > 0 for o in outs)  # fp16 overflow would give flat NaN-black
