"""SD1.5-architecture img2img pipelines with random weights, built offline (no download).

- `build_tiny_pipeline`: the real components (UNet2DConditionModel, AutoencoderKL, CLIP text
  encoder and BPE tokenizer, PNDM scheduler) at toy widths: loading and running it through
  diffusers exercises the same code paths as a hub model in well under a second per call on a
  CPU. The tests use it.
- `build_tiny_controlnet`, `build_tiny_pix2pix`, `build_tiny_lora`: a ControlNet for the tiny
  UNet, an instruction-editing pipeline of the same architecture (8 UNet input channels: the
  photo's latents ride along), and a LoRA on the tiny UNet; for the pipeline-kind tests.
- `build_sd15_pipeline`: the same components at SD1.5's full size (860M-parameter UNet, 123M
  text encoder, 84M VAE). Random weights cost exactly the compute of real ones, so the GPU
  benchmark needs no weights.

Both write a `save_pretrained` directory that `from_pretrained(<path>)` loads, as a worker loads
a hub model. Needs torch, diffusers and transformers (the `diffusers` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInstructPix2PixPipeline,
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


def build_tiny_controlnet(path: Path, seed: int = 0) -> Path:
    """Write a tiny ControlNetModel for the tiny UNet (its config, its weights) under `path`.

    The control image enters at pixel size and must meet the latents: the tiny VAE halves
    the side, so the conditioning embedding downsamples once (two levels), not SD's 8x."""
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(_unet(), conditioning_embedding_out_channels=(8, 16))
    # Its output convolutions start at zero (a fresh ControlNet changes nothing); random
    # ones make the tests able to see that the control image steers the result.
    zero_convs = [
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
        controlnet.controlnet_cond_embedding.conv_out,
    ]
    for conv in zero_convs:
        torch.nn.init.normal_(conv.weight, std=0.2)
    controlnet.save_pretrained(Path(path) / "controlnet")
    return Path(path) / "controlnet"


def build_tiny_pix2pix(path: Path, seed: int = 0) -> Path:
    """Write a tiny StableDiffusionInstructPix2PixPipeline: SD's parts, and a UNet taking 8
    input channels (noisy latents and the photo's latents, side by side)."""
    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = _tokenizer(path / "_tokenizer_src")
    base: Any = _unet()  # mypy misreads diffusers' mixins: .config is there
    unet_config = dict(base.config)
    unet_config["in_channels"] = 8
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=UNet2DConditionModel.from_config(unet_config),
        scheduler=_scheduler(),  # (EulerAncestral, the real one's, warns on NumPy 2 here)
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path / "pipeline")  # type: ignore[attr-defined]
    return path / "pipeline"


def build_tiny_lora(path: Path, seed: int = 0, rank: int = 4) -> Path:
    """Write a LoRA for the tiny UNet's attention projections (random, non-zero, so it shows)
    with the pipeline's save_lora_weights; returns the directory (pytorch_lora_weights)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)
    unet: Any = _unet()
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False)
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionImg2ImgPipeline.save_lora_weights(Path(path) / "lora", unet_lora_layers=layers)
    return Path(path) / "lora"


def build_sd15_pipeline(path: Path, seed: int = 0, dtype: str = "float16") -> Path:
    """Write a full-size SD1.5-architecture img2img pipeline with random weights under `path`,
    stored in `dtype` (fp16 halves the 4 GB of fp32 weights); return its directory."""
    path = Path(path)
    torch.manual_seed(seed)
    tokenizer = _tokenizer(path / "_tokenizer_src")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(  # SD1.5's text encoder is CLIP ViT-L/14's: 12 layers, 768 wide
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    vae = AutoencoderKL(  # SD's VAE: four levels, downsampling by 8
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    # UNet2DConditionModel's defaults are SD1.x's (320-640-1280-1280, two layers per block,
    # attention head dim 8) except the text width.
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(dtype=getattr(torch, dtype))  # type: ignore[attr-defined]
    pipe.save_pretrained(path / "pipeline")  # type: ignore[attr-defined]
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
