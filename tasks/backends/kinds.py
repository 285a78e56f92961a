"""The diffusers side of a style's pipeline kind: which class loads it, what else it loads
(ControlNet, LoRAs, scheduler), the control image it needs and the arguments of one call.

Imports torch and diffusers: only the diffusers backend imports this module.
"""

from __future__ import annotations

import inspect
from typing import Any

import cv2
import diffusers
import numpy as np
import torch
from diffusers import (
    AutoPipelineForImage2Image,
    ControlNetModel,
    StableDiffusionControlNetImg2ImgPipeline,
)
from PIL import Image

from tasks.styles import SD_FAMILY, StylePreset

# The SD-family classes carry an NSFW checker: not loaded (a product decision: a second
# model to load and hold); the safety check of a deployment is its own.
NO_CHECKER = {"safety_checker": None, "requires_safety_checker": False}


def load_pipeline(style: StylePreset, dtype_kwargs: dict[str, Any]) -> Any:
    """from_pretrained of the style's kind, on the host; the caller moves it to its device."""
    if style.kind == "controlnet":
        controlnet = ControlNetModel.from_pretrained(style.controlnet, **dtype_kwargs)
        return StableDiffusionControlNetImg2ImgPipeline.from_pretrained(
            style.model, controlnet=controlnet, **dtype_kwargs, **NO_CHECKER
        )
    if style.kind == "edit":
        cls = getattr(diffusers, style.pipeline)
        extra = NO_CHECKER if style.pipeline in SD_FAMILY else {}
        return cls.from_pretrained(style.model, **dtype_kwargs, **extra)
    return AutoPipelineForImage2Image.from_pretrained(style.model, **dtype_kwargs, **NO_CHECKER)


def apply_scheduler(pipe: Any, style: StylePreset) -> None:
    """Swap in the style's scheduler, configured from the model's own (betas, offsets)."""
    if style.scheduler:
        cls = getattr(diffusers, style.scheduler)
        pipe.scheduler = cls.from_config(pipe.scheduler.config)


def apply_loras(pipe: Any, style: StylePreset) -> None:
    """Load the style's LoRAs at their scales; fused into the weights when asked (no per-call
    LoRA cost), after which the adapters are unloaded and the fused weights stay."""
    if not style.loras:
        return
    names = [f"{style.name}_{i}" for i in range(len(style.loras))]
    for lora, name in zip(style.loras, names, strict=True):
        pipe.load_lora_weights(
            lora.weights, weight_name=lora.weight_name or None, adapter_name=name
        )
    pipe.set_adapters(names, adapter_weights=[lora.scale for lora in style.loras])
    if style.fuse_loras:
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        pipe.unload_lora_weights()


def denoiser(pipe: Any) -> torch.nn.Module:
    """The UNet of SD-family pipelines, the transformer of flow-matching ones."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else pipe.transformer


def control_image(array: np.ndarray, style: StylePreset) -> np.ndarray:
    """Canny edges of an (h, w, 3) uint8 photo as an (h, w, 3) uint8 control image."""
    grey = cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, style.canny_low, style.canny_high)
    return np.repeat(edges[:, :, None], 3, axis=2)


def one_image_per_call(style: StylePreset) -> bool:
    """Flow-matching edit pipelines read a list of images as references for one result."""
    return style.kind == "edit" and style.pipeline not in SD_FAMILY


def call_kwargs(
    pipe: Any,
    style: StylePreset,
    pixels: torch.Tensor,
    control: torch.Tensor | None,
    generators: list[torch.Generator],
    steps: int,
) -> dict[str, Any]:
    """Arguments of one call: (n, 3, h, w) pixels in [0, 1]; results come back the same."""
    n, _, h, w = pixels.shape
    kwargs: dict[str, Any] = {
        "prompt": [style.prompt] * n,
        "negative_prompt": [style.negative_prompt] * n,
        "image": pixels,
        "num_inference_steps": steps,
        "guidance_scale": style.guidance,
        "generator": generators,
        "output_type": "pt",
    }
    if style.kind in ("img2img", "controlnet"):
        kwargs["strength"] = style.strength
    if control is not None:
        kwargs["control_image"] = control
        kwargs["controlnet_conditioning_scale"] = style.controlnet_scale
    if style.image_guidance is not None:
        kwargs["image_guidance_scale"] = style.image_guidance
    if one_image_per_call(style):
        kwargs.update(_single(pixels, generators, style, h, w))
    accepted = inspect.signature(type(pipe).__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return kwargs  # the SD family (whose **kwargs are deprecated callbacks): all apply
    return {k: v for k, v in kwargs.items() if k in accepted}


def _single(
    pixels: torch.Tensor, generators: list[torch.Generator], style: StylePreset, h: int, w: int
) -> dict[str, Any]:
    """One photo as a PIL image (their processors expect one), at the bucket's shape; real
    classifier-free guidance with the negative prompt where the class offers it."""
    array = (pixels[0].float() * 255).round().clamp(0, 255).to(torch.uint8)
    photo = Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")
    out: dict[str, Any] = {
        "image": photo,
        "prompt": style.prompt,
        "negative_prompt": style.negative_prompt or " ",
        "generator": generators[0],
        "height": h,
        "width": w,
    }
    if style.pipeline == "QwenImageEditPipeline":
        out["true_cfg_scale"] = style.guidance
        out["guidance_scale"] = None  # for guidance-distilled checkpoints only
    return out
