"""A tiny, randomly initialised SD1.5-architecture img2img pipeline, built offline for tests.

It has the real components (UNet2DConditionModel, AutoencoderKL, CLIP text encoder and BPE
tokenizer, PNDM scheduler) at toy widths, so loading and running it through diffusers exercises
the same code paths as a hub model in well under a second per call on a CPU. Needs torch,
diffusers and transformers (the `diffusers` extra).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HIDDEN = 16  # text-encoder width, and so the UNet's cross_attention_dim
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def build_tiny_pipeline(path: Path, seed: int = 0) -> Path:
    """Write a tiny StableDiffusionImg2ImgPipeline under `path` (save_pretrained); return it."""
    path = Path(path)
    torch.manual_seed(seed)  # fixed weights: the same pipeline on every build
    tokenizer = _tokenizer(path / "_tokenizer_src")
    pipe = StableDiffusionImg2ImgPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=_unet(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path / "pipeline")  # type: ignore[attr-defined]  # mypy misreads the MRO
    return path / "pipeline"


def _unet() -> UNet2DConditionModel:
    """Two-level UNet, 8/16 channels; cross-attention on the lower level as in SD."""
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=2,
    )


def _vae() -> AutoencoderKL:
    """Two-level VAE (scale factor 2) with SD's 4 latent channels."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        norm_num_groups=8,
        layers_per_block=1,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=32,
    )


def _text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """Two-layer CLIP text model whose special-token ids match the tokenizer's."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config).eval()


def _scheduler() -> PNDMScheduler:
    """SD1.5's scheduler settings."""
    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
    )


def _tokenizer(src: Path) -> CLIPTokenizer:
    """A byte-level CLIP BPE tokenizer from a hand-written vocab.json and merges.txt."""
    src.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in _byte_chars()]
    # CLIP marks word ends with </w>; every single byte, bare and word-final, keeps BPE total.
    vocab = {tok: i for i, tok in enumerate([BOS, EOS, *chars, *(c + "</w>" for c in chars)])}
    merges = ["s t", "st y", "l e</w>", "sty le</w>"]
    for i, tok in enumerate(["st", "sty", "le</w>", "style</w>"], start=len(vocab)):
        vocab[tok] = i
    (src / "vocab.json").write_text(json.dumps(vocab), "utf-8")
    (src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    return CLIPTokenizer.from_pretrained(src, model_max_length=77)


def _byte_chars() -> list[int]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(b)
        else:
            out.append(256 + extra)
            extra += 1
    return out
