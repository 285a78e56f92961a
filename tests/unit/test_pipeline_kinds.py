"""Pipeline kinds through DiffusersBackend: ControlNet img2img, instruction editing, LoRAs and a
few-step scheduler, each on tiny random models saved to disk and loaded back through the real
from_pretrained / load_lora_weights paths (offline, CPU, seconds)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tasks.styles import Lora, StylePreset

pytestmark = pytest.mark.unit

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from diffusers import (  # noqa: E402
    LCMScheduler,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionInstructPix2PixPipeline,
)

from bench.pipelines import (  # noqa: E402
    build_tiny_controlnet,
    build_tiny_lora,
    build_tiny_pipeline,
    build_tiny_pix2pix,
)
from tasks.backends import PipelineOptions  # noqa: E402
from tasks.backends import kinds as kinds_module  # noqa: E402
from tasks.backends.diffusers import DiffusersBackend  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("kinds")
    return {
        "sd": str(build_tiny_pipeline(root / "sd")),
        "controlnet": str(build_tiny_controlnet(root / "cn")),
        "pix2pix": str(build_tiny_pix2pix(root / "p2p")),
        "lora": str(build_tiny_lora(root / "lora")),
    }


@pytest.fixture(scope="module")
def backend() -> DiffusersBackend:
    return DiffusersBackend(PipelineOptions(device="cpu"))


def style(model: str, **fields: Any) -> StylePreset:
    base = {"negative_prompt": "photo", "strength": 0.5, "steps": 2, "size": 32}
    return StylePreset("s", {"en": "S"}, model, "ghibli style", **{**base, **fields})


def controlnet_style(models: dict[str, str], **fields: Any) -> StylePreset:
    return style(models["sd"], kind="controlnet", controlnet=models["controlnet"], **fields)


def edit_style(models: dict[str, str], **fields: Any) -> StylePreset:
    fields = {"pipeline": "StableDiffusionInstructPix2PixPipeline", **fields}
    return style(models["pix2pix"], kind="edit", image_guidance=1.5, **fields)


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def spy(pipe: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the keyword arguments of each call of `pipe`'s class."""
    real = type(pipe).__call__
    calls: list[dict[str, Any]] = []

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", call)
    return calls


def test_controlnet_style_is_guided_by_canny_edges(
    backend: DiffusersBackend, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    guided = controlnet_style(models, controlnet_scale=1.0)
    pipe = backend.pipeline(guided)
    assert isinstance(pipe, StableDiffusionControlNetImg2ImgPipeline)
    calls = spy(pipe, monkeypatch)
    srcs = [photo(48, 32), photo(32, 32, seed=1)]
    outs = backend.stylize(srcs, guided)
    assert [(o.mode, o.size) for o in outs] == [("RGB", (48, 32)), ("RGB", (32, 32))]
    control = calls[0]["control_image"]
    assert control.shape == calls[0]["image"].shape  # per image, at the bucket's shape
    assert set(control.unique().tolist()) <= {0.0, 1.0} and control.max() == 1.0  # edges
    assert calls[0]["controlnet_conditioning_scale"] == 1.0
    unguided = backend.stylize(srcs[:1], replace(guided, controlnet_scale=0.0))[0]
    assert unguided.tobytes() != outs[0].tobytes()  # the ControlNet steers the result
    assert backend.pipeline(replace(guided, controlnet_scale=0.0)) is pipe  # a call setting


def test_canny_thresholds_reach_the_control_image() -> None:
    ramp = np.zeros((32, 32, 3), np.uint8)
    ramp[:, 16:] = 60  # one faint vertical edge
    loose = kinds_module.control_image(ramp, style("m", kind="controlnet", canny_low=10))
    strict = kinds_module.control_image(
        ramp, style("m", kind="controlnet", canny_low=400, canny_high=800)
    )
    assert loose.shape == (32, 32, 3) and loose.max() == 255
    assert strict.max() == 0  # the edge is below the thresholds


def test_edit_style_runs_the_named_pipeline_with_its_instruction(
    backend: DiffusersBackend, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit = edit_style(models)
    pipe = backend.pipeline(edit)
    assert isinstance(pipe, StableDiffusionInstructPix2PixPipeline)
    assert backend.pipeline(edit).unet.config.in_channels == 8  # the photo's latents too
    calls = spy(pipe, monkeypatch)
    outs = backend.stylize([photo(32, 48), photo(40, 40, seed=1)], edit)
    assert [(o.mode, o.size) for o in outs] == [("RGB", (32, 48)), ("RGB", (40, 40))]
    assert calls[0]["prompt"] == ["ghibli style"] and calls[0]["image_guidance_scale"] == 1.5
    assert "strength" not in calls[0]  # editing pipelines take none
    assert calls[0]["num_inference_steps"] == 2  # all of them: no strength to scale them


def test_a_batch_beyond_the_styles_max_batch_is_split_into_calls(
    backend: DiffusersBackend, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit = edit_style(models, max_batch=2)
    calls = spy(backend.pipeline(edit), monkeypatch)
    srcs = [photo(32, 32, seed=i) for i in range(3)]
    outs = backend.stylize(srcs, edit)
    assert [len(c["image"]) for c in calls] == [2, 1]
    assert [o.size for o in outs] == [(32, 32)] * 3
    alone = backend.stylize(srcs[2:], edit)[0]
    assert alone.tobytes() == outs[2].tobytes()  # in order: the 3rd result is the 3rd photo's


def test_single_photo_pipelines_get_one_pil_image_and_real_cfg() -> None:
    """The flow-matching editors (too big to build here) get one photo per call, as PIL."""

    from diffusers import QwenImageEditPipeline as Real

    class QwenImageEditPipeline:  # the real class's call signature, nothing else
        __call__ = Real.__call__

    qwen = style("m", kind="edit", pipeline="QwenImageEditPipeline", max_batch=1, guidance=4.0)
    pixels = torch.rand(1, 3, 48, 32)
    generators = [torch.Generator().manual_seed(0)]
    args = kinds_module.call_kwargs(QwenImageEditPipeline(), qwen, pixels, None, generators, 8)
    assert isinstance(args["image"], Image.Image) and args["image"].size == (32, 48)
    assert (args["height"], args["width"], args["true_cfg_scale"]) == (48, 32, 4.0)
    assert args["prompt"] == "ghibli style" and args["generator"] is generators[0]
    assert set(args) <= set(inspect.signature(Real.__call__).parameters)
    assert kinds_module.one_image_per_call(qwen)


def test_lora_style_loads_its_adapter_and_changes_the_result(
    backend: DiffusersBackend, models: dict[str, str]
) -> None:
    plain = style(models["sd"])
    lora = replace(plain, loras=(Lora(models["lora"], "pytorch_lora_weights.safetensors", 0.8),))
    pipe = backend.pipeline(lora)
    assert pipe is not backend.pipeline(plain)  # LoRAs change the weights: no sharing
    assert pipe.get_active_adapters() == ["s_0"]
    src = [photo(32, 32)]
    base, styled = backend.stylize(src, plain)[0], backend.stylize(src, lora)[0]
    assert base.tobytes() != styled.tobytes()
    stronger = backend.stylize(src, replace(lora, loras=(replace(lora.loras[0], scale=1.6),)))[0]
    assert stronger.tobytes() != styled.tobytes()  # the scale reaches the adapter


def test_fused_lora_keeps_its_effect_without_adapters(
    backend: DiffusersBackend, models: dict[str, str]
) -> None:
    unfused = style(models["sd"], loras=(Lora(models["lora"], scale=0.8),))
    fused = replace(unfused, fuse_loras=True)
    pipe = backend.pipeline(fused)
    assert pipe.get_list_adapters() == {}  # unloaded after fusing ...
    src = [photo(32, 32)]
    a = np.asarray(backend.stylize(src, unfused)[0], dtype=np.int16)
    b = np.asarray(backend.stylize(src, fused)[0], dtype=np.int16)
    assert np.abs(a - b).max() <= 2  # ... and the fused weights give the same picture


def test_few_step_scheduler_preset(
    backend: DiffusersBackend, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = style(models["sd"], scheduler="LCMScheduler", steps=4, guidance=1.0, strength=0.5)
    pipe = backend.pipeline(fast)
    assert isinstance(pipe.scheduler, LCMScheduler)
    scheduler: Any = pipe.scheduler
    assert scheduler.config.beta_schedule == "scaled_linear"  # the model's own betas
    assert not isinstance(backend.pipeline(style(models["sd"])).scheduler, LCMScheduler)
    calls = spy(pipe, monkeypatch)
    outs = backend.stylize([photo(48, 32)], fast)
    assert outs[0].size == (48, 32) and calls[0]["num_inference_steps"] == 4


def test_styles_that_can_share_a_pipeline_do(
    backend: DiffusersBackend, models: dict[str, str]
) -> None:
    a = style(models["sd"])
    b = replace(a, name="b", prompt="arcane style", strength=0.7, steps=6)
    assert backend.pipeline(a) is backend.pipeline(b)


def test_warm_up_loads_each_shareable_pipeline_once(models: dict[str, str]) -> None:
    fresh = DiffusersBackend(PipelineOptions(device="cpu", warmup_buckets=("512x512",)))
    plain = style(models["sd"])
    styles = [controlnet_style(models), edit_style(models), plain, replace(plain, name="b")]
    report = fresh.warm_up(styles)
    assert (report.models, report.calls) == (3, 3)  # the two plain styles share one


def test_compiled_warm_up_shapes_respect_a_styles_max_batch(models: dict[str, str]) -> None:
    compiled = DiffusersBackend(
        PipelineOptions(
            device="cpu",
            compile="unet",
            compile_backend="eager",
            batch_sizes=(1, 4),
            warmup_buckets=("512x512",),
        )
    )
    assert compiled._warm_shapes(edit_style(models, max_batch=1)) == [("512x512", 1)]
    assert compiled._warm_shapes(edit_style(models, max_batch=2)) == [
        ("512x512", 1),
        ("512x512", 2),
    ]
    assert compiled._warm_shapes(style("m")) == [("512x512", 1), ("512x512", 4)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_each_kind_on_cuda(models: dict[str, str]) -> None:
    cuda = DiffusersBackend(PipelineOptions(device="cuda"))
    lora = (Lora(models["lora"], scale=0.8),)
    presets = [
        controlnet_style(models),
        edit_style(models),
        edit_style(models, max_batch=1),
        style(models["sd"], loras=lora),
        style(models["sd"], loras=lora, fuse_loras=True),
        style(models["sd"], scheduler="LCMScheduler", guidance=1.0),
    ]
    srcs = [photo(48, 32), photo(32, 48, seed=1)]
    for preset in presets:
        outs = cuda.stylize(srcs, preset)
        pipe = cuda.pipeline(preset)
        assert (pipe.device.type, pipe.dtype) == ("cuda", torch.float16)
        assert [(o.mode, o.size) for o in outs] == [("RGB", (48, 32)), ("RGB", (32, 48))]
        assert all(np.asarray(o).std() > 0 for o in outs)  # no NaN-black from fp16
