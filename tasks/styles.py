"""Style presets, loaded from a TOML styles file (the bundled tasks/styles.toml by default).

A preset names a pipeline kind: `img2img` (the photo, noised and denoised), `controlnet`
(img2img guided by canny edges of the photo, so the person's outline survives a strong style)
or `edit` (an instruction-editing pipeline: the prompt is the instruction). LoRAs, a scheduler
and its steps make few-step presets. Impossible combinations fail when the file loads.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
KINDS = ("img2img", "controlnet", "edit")
CONTROLS = ("canny",)
SCHEDULERS = (
    "LCMScheduler",
    "TCDScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "DPMSolverMultistepScheduler",
    "DDIMScheduler",
    "PNDMScheduler",
)
# Instruction-editing pipelines diffusers ships -> (images per call, takes image_guidance).
# The flow-matching ones take one photo per call (a list of images is several references for
# one result) and keep their own scheduler.
EDIT_PIPELINES = {
    "StableDiffusionInstructPix2PixPipeline": (0, True),
    "QwenImageEditPipeline": (1, False),
    "Flux2KleinPipeline": (1, False),
    "FluxKontextPipeline": (1, False),
}
SD_FAMILY = ("StableDiffusionInstructPix2PixPipeline",)  # UNet + the SD schedulers
CONTROLNET_KEYS = ("controlnet", "control", "canny_low", "canny_high", "controlnet_scale")
EDIT_KEYS = ("pipeline", "image_guidance")
LORA_KEYS = ("weights", "weight_name", "scale")


class StylesError(ValueError):
    """The styles file is missing, malformed or names an invalid preset."""


@dataclass(frozen=True)
class Lora:
    weights: str  # hub id, directory or .safetensors file
    weight_name: str = ""  # the file inside a repository or directory holding several
    scale: float = 1.0


@dataclass(frozen=True)
class StylePreset:
    name: str  # also the chat command: /ghibli
    display: dict[str, str]  # locale -> display name, "en" required
    model: str  # diffusers: hub id or local path
    prompt: str  # an edit style's instruction
    negative_prompt: str = ""
    strength: float = 0.6
    steps: int = 30
    guidance: float = 7.5
    size: int = 512  # the model's native square side: working shapes scale with it
    classic: dict[str, Any] = field(default_factory=dict)  # parameters of the CPU look
    kind: str = "img2img"
    controlnet: str = ""  # controlnet: the ControlNetModel's hub id or path
    control: str = "canny"
    canny_low: int = 100
    canny_high: int = 200
    controlnet_scale: float = 1.0
    pipeline: str = ""  # edit: the diffusers class
    image_guidance: float | None = None  # edit: how closely to keep the photo, where taken
    loras: tuple[Lora, ...] = ()
    fuse_loras: bool = False
    scheduler: str = ""  # "": the model's own
    max_batch: int = 0  # images per pipeline call; 0: the worker's STYLEBOT_MAX_BATCH

    def display_name(self, locale: str) -> str:
        return self.display.get(locale, self.display["en"])

    def batch_cap(self, limit: int) -> int:
        """The jobs one call of this style may take, given the worker's own `limit`."""
        return min(limit, self.max_batch) if self.max_batch else limit

    def pipeline_key(self) -> tuple[Any, ...]:
        """Styles with equal keys can share one loaded pipeline (and one call)."""
        return (
            self.model,
            self.kind,
            self.controlnet,
            self.pipeline,
            self.loras,
            self.fuse_loras,
            self.scheduler,
        )


FIELDS = {f.name for f in fields(StylePreset)} - {"name"}
NUMBERS = ("strength", "guidance", "controlnet_scale", "image_guidance")
INTEGERS = ("steps", "size", "canny_low", "canny_high", "max_batch")
STRINGS = ("model", "prompt", "negative_prompt", "kind", "controlnet", "control", "pipeline")


def load_styles(path: Path | None = None) -> dict[str, StylePreset]:
    """Read presets from `path` (or the bundled file); keyed by name, in file order."""
    try:
        if path is None:
            text = resources.files("tasks").joinpath("styles.toml").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StylesError(f"cannot read styles file {path or 'tasks/styles.toml'}: {exc}") from exc
    tables = raw.get("styles", {})
    if not isinstance(tables, dict) or not tables:  # a file that names no style serves nothing
        raise StylesError(
            f"the styles file {path or 'tasks/styles.toml'} defines no [styles.<name>] table"
        )
    return {name: _preset(name, table) for name, table in tables.items()}


def _preset(name: str, table: dict[str, Any]) -> StylePreset:
    if not name or set(name) - NAME_CHARS:
        raise StylesError(f"style name {name!r}: use lowercase letters, digits and _")
    if not isinstance(table, dict):
        raise StylesError(f"style {name!r}: expected a [styles.{name}] table")
    for key, value in table.items():
        _check_type(name, key, value)
    table = {
        **table,
        "loras": tuple(_lora(name, i, t) for i, t in enumerate(table.get("loras", []))),
    }
    try:
        preset = StylePreset(name=name, **table)
    except TypeError as exc:  # a required key missing
        raise StylesError(f"style {name!r}: {exc}") from exc
    if "en" not in preset.display:
        raise StylesError(f"style {name!r}: display needs an 'en' name")
    if not (0.0 < preset.strength <= 1.0 and preset.steps >= 1 and preset.size % 8 == 0):
        raise StylesError(f"style {name!r}: strength in (0, 1], steps >= 1, size a multiple of 8")
    if "max_batch" in table and preset.max_batch < 1:
        raise StylesError(f"style {name!r}: 'max_batch' must be >= 1")
    _check_kind(name, preset, set(table))
    _check_ranges(name, preset)
    if preset.kind == "edit" and "max_batch" not in table:
        return replace(preset, max_batch=EDIT_PIPELINES[preset.pipeline][0])
    return preset


def _check_type(name: str, key: str, value: Any) -> None:
    """Unknown keys and values of the wrong type (a quoted number, say) fail here."""
    if key not in FIELDS:
        raise StylesError(f"style {name!r}: unknown key {key!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        **dict.fromkeys(NUMBERS, number),
        **dict.fromkeys(INTEGERS, isinstance(value, int) and not isinstance(value, bool)),
        **dict.fromkeys(STRINGS, isinstance(value, str)),
        "display": isinstance(value, dict),
        "classic": isinstance(value, dict),
        "fuse_loras": isinstance(value, bool),
        "scheduler": isinstance(value, str),
        "loras": isinstance(value, list) and all(isinstance(t, dict) for t in value),
    }[key]
    if not ok:
        raise StylesError(f"style {name!r}: {key!r} has the wrong type ({value!r})")


def _lora(name: str, i: int, table: dict[str, Any]) -> Lora:
    where = f"style {name!r}: loras[{i}]"
    if unknown := set(table) - set(LORA_KEYS):
        raise StylesError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if not isinstance(table.get("weights"), str) or not table["weights"]:
        raise StylesError(f"{where}: 'weights' (a hub id or path) is required")
    if not isinstance(table.get("weight_name", ""), str):
        raise StylesError(f"{where}: 'weight_name' must be a file name")
    scale = table.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale < 0:
        raise StylesError(f"{where}: 'scale' must be a number >= 0")
    return Lora(table["weights"], table.get("weight_name", ""), float(scale))


def _check_kind(name: str, preset: StylePreset, given: set[str]) -> None:
    """Keys that only one kind takes, and what each kind needs."""
    where = f"style {name!r}"
    if preset.kind not in KINDS:
        raise StylesError(f"{where}: 'kind' {preset.kind!r}: use {', '.join(KINDS)}")
    for key in (*CONTROLNET_KEYS, *EDIT_KEYS):
        owner = "controlnet" if key in CONTROLNET_KEYS else "edit"
        if key in given and preset.kind != owner:
            raise StylesError(f"{where}: {key!r} applies to kind = {owner!r} styles only")
    if preset.kind == "controlnet" and not preset.controlnet:
        raise StylesError(f"{where}: 'controlnet' (a ControlNet model id or path) is required")
    if preset.kind == "edit":
        _check_edit(where, preset, given)
    elif preset.image_guidance is not None:
        raise StylesError(f"{where}: 'image_guidance' applies to kind = 'edit' styles only")


def _check_edit(where: str, preset: StylePreset, given: set[str]) -> None:
    if not preset.pipeline:
        raise StylesError(f"{where}: 'pipeline' (the diffusers class) is required for edit")
    if preset.pipeline not in EDIT_PIPELINES:
        raise StylesError(
            f"{where}: 'pipeline' {preset.pipeline!r}: use {', '.join(EDIT_PIPELINES)}"
        )
    if "strength" in given:
        raise StylesError(f"{where}: 'strength' applies to img2img and controlnet, not edit")
    one_image = EDIT_PIPELINES[preset.pipeline][0] == 1
    if one_image and preset.max_batch > 1:
        raise StylesError(f"{where}: 'max_batch': {preset.pipeline} takes one photo per call")
    if preset.image_guidance is not None and not EDIT_PIPELINES[preset.pipeline][1]:
        raise StylesError(f"{where}: 'image_guidance' is not taken by {preset.pipeline}")
    if preset.scheduler and preset.pipeline not in SD_FAMILY:
        raise StylesError(f"{where}: 'scheduler' cannot be changed on {preset.pipeline}")


def _check_ranges(name: str, preset: StylePreset) -> None:
    where = f"style {name!r}"
    if preset.control not in CONTROLS:
        raise StylesError(f"{where}: 'control' {preset.control!r}: use {', '.join(CONTROLS)}")
    if not 0 <= preset.canny_low < preset.canny_high:
        raise StylesError(f"{where}: 'canny_low' and 'canny_high': 0 <= low < high")
    for key in ("guidance", "controlnet_scale", "image_guidance"):
        if (value := getattr(preset, key)) is not None and value < 0:
            raise StylesError(f"{where}: {key!r} must be >= 0")
    if preset.scheduler and preset.scheduler not in SCHEDULERS:
        raise StylesError(f"{where}: 'scheduler' {preset.scheduler!r}: use {', '.join(SCHEDULERS)}")
    if preset.fuse_loras and not preset.loras:
        raise StylesError(f"{where}: 'fuse_loras' needs 'loras'")
