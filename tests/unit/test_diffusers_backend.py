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

from tasks.backends import PipelineOptions  # noqa: E402
from tasks.backends.diffusers import DiffusersBackend, min_steps  # noqa: E402
from tasks.buckets import bucket_shape, fit_inside  # noqa: E402
from tests.tiny_pipeline import build_tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def cpu_backend() -> DiffusersBackend:
    # Module-scoped so the tests share one loaded pipeline, as a worker would.
    return DiffusersBackend(PipelineOptions(device="cpu"))


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


def spy_calls(pipe: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, tuple[int, int]]]:
    """Record (batch size, image size) of each pipeline call."""
    real_call = type(pipe).__call__
    calls: list[tuple[int, tuple[int, int]]] = []

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        pixels = kwargs["image"]  # one (n, 3, h, w) tensor: the batch shares one shape
        assert len(pixels) == len(kwargs["prompt"]) and pixels.shape[1] == 3
        calls.append((len(pixels), (pixels.shape[3], pixels.shape[2])))
        return real_call(self, *args, **kwargs)

    # Python looks __call__ up on the type, so the spy goes on the pipeline's class.
    monkeypatch.setattr(type(pipe), "__call__", spy)
    return calls


def test_batch_is_one_pipeline_call_at_the_bucket_shape(
    cpu_backend: DiffusersBackend, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_calls(cpu_backend.pipeline(str(tiny_model)), monkeypatch)
    outs = cpu_backend.stylize([photo(64, 64), photo(60, 56, seed=1)], preset(tiny_model))
    assert calls == [(2, (64, 64))]  # both square-ish: one call at the square bucket
    assert [o.size for o in outs] == [(64, 64), (60, 56)]


def test_mixed_buckets_get_one_call_each_and_keep_order(
    cpu_backend: DiffusersBackend, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_calls(cpu_backend.pipeline(str(tiny_model)), monkeypatch)
    srcs = [photo(90, 60), photo(64, 64, seed=1), photo(100, 70, seed=2)]
    outs = cpu_backend.stylize(srcs, preset(tiny_model, size=32))
    assert sorted(calls) == [(1, (32, 32)), (2, (48, 32))]  # landscape bucket: 1.5 × size wide
    assert [o.size for o in outs] == [(90, 60), (64, 64), (100, 70)]


@pytest.mark.parametrize(
    ("size", "box", "fit"),
    [
        ((1000, 500), (768, 512), (768, 384)),
        ((500, 1000), (512, 768), (384, 768)),
        ((64, 64), (512, 512), (512, 512)),  # small photos are scaled up to the bucket
        ((4000, 10), (768, 512), (768, 2)),
    ],
)
def test_fit_inside_keeps_aspect(
    size: tuple[int, int], box: tuple[int, int], fit: tuple[int, int]
) -> None:
    assert fit_inside(size, box) == fit


def test_bucket_shapes_scale_with_the_model_size() -> None:
    assert bucket_shape("512x768") == (512, 768)
    assert bucket_shape("768x512", 1024) == (1536, 1024)
    assert bucket_shape("512x512", 64) == (64, 64)


def test_warm_up_uncompiled_loads_and_runs_each_model_once(tiny_model: Path) -> None:
    backend = DiffusersBackend(PipelineOptions(device="cpu"))
    other = StylePreset("b", {"en": "B"}, str(tiny_model), "another prompt", steps=2, size=32)
    report = backend.warm_up([preset(tiny_model, size=32), other])
    assert (report.models, report.calls, report.graphs) == (1, 1, 0)
    assert report.load_s > 0 and report.warmup_s > 0
    assert report.vram_peak_mib is None  # CPU
    assert [key[0] for key in backend._pipelines] == [str(tiny_model)]  # keyed by model first


@pytest.fixture
def fresh_dynamo() -> Any:
    """A clean compiler cache and, afterwards, the default stance (both are process-wide)."""
    torch._dynamo.reset()
    yield
    torch.compiler.set_stance("default")
    torch._dynamo.reset()


def compiled_on_cpu(batch_sizes: tuple[int, ...], buckets: tuple[str, ...]) -> DiffusersBackend:
    return DiffusersBackend(
        PipelineOptions(
            device="cpu",
            compile="unet",
            compile_backend="eager",
            batch_sizes=batch_sizes,
            warmup_buckets=buckets,
        )
    )


@pytest.mark.usefixtures("fresh_dynamo")
def test_compiled_pipeline_does_not_recompile_after_warm_up(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynamo's graph capture (backend "eager": no code generation, seconds on a CPU) counts
    graphs exactly as inductor does, so this checks the warm-up plan, not kernel speed."""
    backend = compiled_on_cpu(batch_sizes=(1, 4), buckets=("512x512", "768x512"))
    style = preset(tiny_model, size=32)
    report = backend.warm_up([style])
    assert report.calls == 4  # 2 buckets × 2 batch sizes
    assert report.graphs >= 4  # one UNet graph per shape, at least
    assert backend.graphs_since_warmup == 0
    calls = spy_calls(backend.pipeline(str(tiny_model)), monkeypatch)
    outs = backend.stylize([photo(40, 40), photo(30, 30, seed=1)], style)  # padded to 4
    outs += backend.stylize([photo(90, 60, seed=2)], style)
    outs += backend.stylize([photo(60, 90, seed=3)], style)  # portrait: never warmed
    assert calls == [(4, (32, 32)), (1, (48, 32)), (1, (32, 48))]
    assert [o.size for o in outs] == [(40, 40), (30, 30), (90, 60), (60, 90)]
    assert backend.graphs_since_warmup == 0  # the portrait shape ran eagerly, uncompiled
    assert backend.log_fields() == "new_graphs=0"  # what the worker's batch_done line carries


def test_padded_size() -> None:
    plain = DiffusersBackend(PipelineOptions(device="cpu", batch_sizes=(1, 4, 16)))
    assert [plain.padded_size(n) for n in (1, 3, 5)] == [1, 3, 5]
    compiled = DiffusersBackend(
        PipelineOptions(device="cpu", compile="unet", batch_sizes=(1, 4, 16))
    )
    assert [compiled.padded_size(n) for n in (1, 2, 4, 5, 16, 17)] == [1, 4, 4, 16, 16, 17]


def test_pipeline_loaded_once_per_model(cpu_backend: DiffusersBackend, tiny_model: Path) -> None:
    pipe = cpu_backend.pipeline(str(tiny_model))
    cpu_backend.stylize([photo(32, 32)], preset(tiny_model, size=32))
    assert cpu_backend.pipeline(str(tiny_model)) is pipe
    assert pipe.dtype == torch.float32  # CPU: no fast fp16 kernels
    # Attention through torch's scaled_dot_product_attention (flash / memory-efficient kernels).
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"AttnProcessor2_0"}


def test_the_stages_compose_to_stylize_and_match_a_plain_pil_call(
    cpu_backend: DiffusersBackend, tiny_model: Path
) -> None:
    """prepare / run / finish (what an overlapping worker runs on three threads) give the
    same pixels as diffusers' own PIL in, PIL out path: the tensors change nothing."""
    style = preset(tiny_model)
    src = photo(96, 64)
    prepared = cpu_backend.prepare([src], style)
    assert prepared.groups[0].pixels.dtype == torch.float32
    pixels = prepared.groups[0].pixels
    assert 0.0 <= float(pixels.min()) <= float(pixels.max()) <= 1.0
    raw = cpu_backend.run(prepared)
    assert raw.groups[0][1].dtype == np.uint8  # left the device as bytes
    staged = cpu_backend.finish(raw)[0]

    box = bucket_shape("768x512", style.size)
    fit = fit_inside(src.size, box)
    fitted = np.asarray(src.resize(fit, Image.Resampling.LANCZOS))
    canvas = np.pad(fitted, ((0, box[1] - fit[1]), (0, box[0] - fit[0]), (0, 0)), mode="symmetric")
    plain = cpu_backend.pipeline(style.model)(
        prompt=[style.prompt],
        negative_prompt=[style.negative_prompt],
        image=[Image.fromarray(canvas, "RGB")],
        strength=style.strength,
        num_inference_steps=min_steps(style.steps, style.strength),
        guidance_scale=style.guidance,
        generator=[torch.Generator("cpu").manual_seed(0)],
        output_type="pil",
    ).images[0]
    expected = plain.crop((0, 0, *fit)).resize(src.size, Image.Resampling.LANCZOS)
    assert staged.tobytes() == expected.tobytes()


def test_int8_quantized_unet_stays_close_to_full_precision(
    cpu_backend: DiffusersBackend, tiny_model: Path
) -> None:
    pytest.importorskip("torchao")
    quantized = DiffusersBackend(PipelineOptions(device="cpu", quantize="int8"))
    style, src = preset(tiny_model), photo(64, 64)
    unet = quantized.pipeline(style.model).unet
    linear = [m for m in unet.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and any(type(m.weight).__name__ != "Parameter" for m in linear)  # swapped
    full = np.asarray(cpu_backend.stylize([src], style)[0], dtype=np.float64)
    low = np.asarray(quantized.stylize([src], style)[0], dtype=np.float64)
    assert low.shape == full.shape
    diff = np.abs(low - full).mean()
    assert 0 < diff < 8  # changed (the int8 path ran), yet the same picture


def test_fp8_needs_a_gpu_that_has_it_and_unknown_kinds_are_refused() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match=r"compute capability 8\.9"):
            DiffusersBackend(PipelineOptions(device="cpu", quantize="fp8"))
    with pytest.raises(ValueError, match="use off, int8, fp8"):
        DiffusersBackend(PipelineOptions(device="cpu", quantize="int4"))


def test_seeded_and_reproducible(cpu_backend: DiffusersBackend, tiny_model: Path) -> None:
    src = photo(64, 64)
    a, b = (cpu_backend.stylize([src], preset(tiny_model))[0] for _ in range(2))
    assert a.tobytes() == b.tobytes()


def test_empty_batch_loads_nothing(tiny_model: Path) -> None:
    backend = DiffusersBackend(PipelineOptions(device="cpu"))
    assert backend.stylize([], preset(tiny_model)) == []
    assert backend._pipelines == {}


def test_min_steps_leaves_one_denoising_step() -> None:
    assert min_steps(30, 0.6) == 30
    assert min_steps(2, 0.1) == 10
    assert int(min_steps(1, 0.3) * 0.3) >= 1


def test_cuda_without_cuda_fails_early() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        DiffusersBackend(PipelineOptions(device="cuda"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_pipeline_on_cuda_fp16(tiny_model: Path) -> None:
    backend = DiffusersBackend(PipelineOptions(device="auto"))
    srcs = [photo(96, 64), photo(64, 96, seed=1)]
    outs = backend.stylize(srcs, preset(tiny_model))
    pipe = backend.pipeline(str(tiny_model))
    assert (pipe.device.type, pipe.dtype) == ("cuda", torch.float16)
    assert [(o.mode, o.size) for o in outs] == [("RGB", (96, 64)), ("RGB", (64, 96))]
    assert all(np.asarray(o).std() > 0 for o in outs)  # fp16 overflow would give flat NaN-black


@pytest.mark.usefixtures("fresh_dynamo")
def test_two_models_of_one_architecture_share_compiled_graphs(
    tiny_model: Path, tmp_path: Path
) -> None:
    other = build_tiny_pipeline(tmp_path / "other", seed=1)  # same shapes, other weights
    backend = compiled_on_cpu(batch_sizes=(1, 2), buckets=("512x512",))
    styles = [preset(tiny_model, size=32), StylePreset("b", {"en": "B"}, str(other), "b", size=32)]
    report = backend.warm_up(styles)
    assert (report.models, report.calls) == (2, 4)
    assert report.graphs == 2  # one per shape: the second model reused the first one's graphs
    a, b = (backend.stylize([photo(32, 32)], style)[0] for style in styles)
    assert a.tobytes() != b.tobytes()  # ... with its own weights
    assert backend.graphs_since_warmup == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("fresh_dynamo")
def test_inductor_compiled_tiny_pipeline_on_cuda(tiny_model: Path) -> None:
    """The real compiler (inductor, Triton kernels) on a GPU: warm-up compiles each shape once,
    serving compiles nothing more, and the worker's figures are reported."""
    backend = DiffusersBackend(
        PipelineOptions(compile="unet", batch_sizes=(1, 2), warmup_buckets=("512x512",))
    )
    style = preset(tiny_model, size=64)
    report = backend.warm_up([style])
    assert report.graphs >= 2 and report.vram_peak_mib is not None and report.vram_peak_mib > 0
    outs = backend.stylize([photo(64, 64), photo(60, 60, seed=1), photo(50, 50, seed=2)], style)
    assert [o.size for o in outs] == [(64, 64), (60, 60), (50, 50)]  # 3 → eager beyond 2
    assert backend.graphs_since_warmup == 0
    assert "new_graphs=0" in backend.log_fields() and "vram_peak_mib=" in backend.log_fields()
