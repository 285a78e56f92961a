"""Style presets: the bundled file and the errors a malformed styles file raises."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from tasks.styles import FIELDS, Lora, StylePreset, StylesError, load_styles

pytestmark = pytest.mark.unit

VALID = """
[styles.sketch]
display = { en = "Sketch" }
model = "some/model"
prompt = "pencil sketch"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "styles.toml"
    path.write_text(text, "utf-8")
    return path


def test_bundled_presets_load_in_file_order() -> None:
    styles = load_styles()
    assert list(styles) == ["ghibli", "arcane"]
    assert all(isinstance(s, StylePreset) for s in styles.values())


@pytest.mark.parametrize(
    ("name", "model", "trigger"),
    [
        ("ghibli", "nitrosocke/Ghibli-Diffusion", "ghibli style"),
        ("arcane", "nitrosocke/Arcane-Diffusion", "arcane style"),
    ],
)
def test_bundled_preset_fields(name: str, model: str, trigger: str) -> None:
    style = load_styles()[name]
    assert style.model == model
    assert trigger in style.prompt  # the fine-tune only applies its look after its trigger
    assert style.negative_prompt
    assert (style.strength, style.steps, style.guidance, style.size) == (0.6, 30, 7.5, 512)
    assert style.display["en"] and style.display["ar"] != style.display["en"]
    assert style.classic  # parameters for the CPU look


def test_display_name_falls_back_to_english() -> None:
    ghibli = load_styles()["ghibli"]
    assert ghibli.display_name("ar") == "جيبلي"
    assert ghibli.display_name("fr") == "Ghibli"


def test_classic_looks_differ_warm_and_cool() -> None:
    styles = load_styles()
    assert styles["ghibli"].classic["warmth"] > 0 > styles["arcane"].classic["warmth"]


def test_custom_file_with_defaults(tmp_path: Path) -> None:
    style = load_styles(write(tmp_path, VALID))["sketch"]
    assert (style.strength, style.steps, style.size, style.classic) == (0.6, 30, 512, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[styles.sketch\nmodel = 1", "cannot read"),
        (VALID + 'colour = "red"\n', "style 'sketch': unknown key 'colour'"),
        (VALID.replace('en = "Sketch"', 'ar = "رسم"'), "'en'"),
        (VALID + "strength = 0.0\n", "strength"),
        (VALID + "strength = 1.5\n", "strength"),
        (VALID + "steps = 0\n", "steps"),
        (VALID + "size = 500\n", "multiple of 8"),
        (VALID.replace("styles.sketch", 'styles."Sketch!"'), "lowercase"),
        ('title = "no presets"\n', "defines no"),
        ("[styles]\n", "defines no"),
        ("styles = []\n", "defines no"),
        ("[styles]\nsketch = 1\n", "expected a"),
        (VALID + 'steps = "30"\n', "steps"),
    ],
    ids=[
        "malformed",
        "unknown-key",
        "no-en-display",
        "strength-zero",
        "strength-above-one",
        "no-steps",
        "size-not-multiple-of-8",
        "bad-name",
        "empty",
        "empty-styles-table",
        "styles-not-a-table",
        "style-not-a-table",
        "quoted-number",
    ],
)
def test_invalid_files_raise(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StylesError, match=message):
        load_styles(write(tmp_path, text))


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(StylesError, match="cannot read"):
        load_styles(tmp_path / "absent.toml")


def test_a_file_that_is_not_utf8_raises(tmp_path: Path) -> None:
    path = tmp_path / "styles.toml"
    path.write_bytes(b"\xff\xfe[styles.sketch]\n")
    with pytest.raises(StylesError, match="cannot read"):
        load_styles(path)


# --- pipeline kinds, LoRAs, schedulers ------------------------------------------------------

CONTROLNET = VALID + 'kind = "controlnet"\ncontrolnet = "some/controlnet"\n'
EDIT = (
    VALID.replace('prompt = "pencil sketch"', 'prompt = "make it a pencil sketch"')
    + 'kind = "edit"\npipeline = "StableDiffusionInstructPix2PixPipeline"\n'
)
QWEN = EDIT.replace("StableDiffusionInstructPix2PixPipeline", "QwenImageEditPipeline")
LORA = '[[styles.sketch.loras]]\nweights = "some/lora"\n'


def examples() -> str:
    """The commented example presets of the bundled file, uncommented."""
    text = resources.files("tasks").joinpath("styles.toml").read_text("utf-8")
    blocks, block = [], []
    for line in text.splitlines():
        if line.startswith("# [styles."):
            block = [line[2:]]
            blocks.append(block)
        elif block and line.startswith("# ") and "=" in line:
            block.append(line[2:])
        else:
            block = []
    return "\n\n".join("\n".join(b) for b in blocks)


def test_bundled_examples_load_when_uncommented(tmp_path: Path) -> None:
    styles = load_styles(write(tmp_path, examples()))
    assert [s.kind for s in styles.values()] == ["controlnet", "img2img", "edit", "edit"]
    outline, fast, edit, klein = styles.values()
    assert outline.controlnet == "lllyasviel/control_v11p_sd15_canny"
    assert (outline.control, outline.canny_low, outline.canny_high) == ("canny", 100, 200)
    assert fast.scheduler == "LCMScheduler" and fast.fuse_loras and 4 <= fast.steps <= 8
    assert fast.loras == (
        Lora("latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors", 1.0),
    )
    assert 1.0 <= fast.guidance <= 2.0
    assert (edit.pipeline, edit.model, edit.max_batch) == (
        "QwenImageEditPipeline",
        "Qwen/Qwen-Image-Edit",
        1,
    )
    assert klein.pipeline == "Flux2KleinPipeline" and klein.max_batch == 1


def test_bundled_file_documents_every_key_and_the_licences() -> None:
    text = resources.files("tasks").joinpath("styles.toml").read_text("utf-8")
    header = text.split("[styles.ghibli]")[0]
    for key in FIELDS:
        assert f"#   {key}" in header or f", {key}" in header, key
    for licence in ("non-commercial", "Apache-2.0", "OpenRAIL-M"):
        assert licence in header


def test_kind_defaults(tmp_path: Path) -> None:
    plain = load_styles(write(tmp_path, VALID))["sketch"]
    assert (plain.kind, plain.loras, plain.scheduler, plain.max_batch) == ("img2img", (), "", 0)
    assert plain.batch_cap(8) == 8
    cn = load_styles(write(tmp_path, CONTROLNET))["sketch"]
    assert (cn.control, cn.canny_low, cn.canny_high, cn.controlnet_scale) == (
        "canny",
        100,
        200,
        1.0,
    )
    pix2pix = load_styles(write(tmp_path, EDIT + "image_guidance = 1.5\n"))["sketch"]
    assert (pix2pix.max_batch, pix2pix.image_guidance) == (0, 1.5)  # takes batches
    qwen = load_styles(write(tmp_path, QWEN))["sketch"]
    assert qwen.max_batch == 1 and qwen.batch_cap(8) == 1  # one photo per call


def test_loras_scheduler_and_max_batch(tmp_path: Path) -> None:
    text = (
        VALID
        + 'scheduler = "LCMScheduler"\nfuse_loras = true\nmax_batch = 4\n'
        + LORA
        + 'weight_name = "w.safetensors"\nscale = 0.8\n'
        + '[[styles.sketch.loras]]\nweights = "/loras/other.safetensors"\n'
    )
    style = load_styles(write(tmp_path, text))["sketch"]
    assert style.loras == (
        Lora("some/lora", "w.safetensors", 0.8),
        Lora("/loras/other.safetensors", "", 1.0),
    )
    assert (style.scheduler, style.fuse_loras, style.batch_cap(8), style.batch_cap(2)) == (
        "LCMScheduler",
        True,
        4,
        2,
    )


def test_pipeline_keys_part_styles_that_cannot_share_a_pipeline(tmp_path: Path) -> None:
    plain = load_styles(write(tmp_path, VALID))["sketch"]
    other_prompt = load_styles(write(tmp_path, VALID + "strength = 0.3\n"))["sketch"]
    with_lora = load_styles(write(tmp_path, VALID + LORA))["sketch"]
    fast = load_styles(write(tmp_path, VALID + 'scheduler = "LCMScheduler"\n'))["sketch"]
    assert plain.pipeline_key() == other_prompt.pipeline_key()
    keys = {s.pipeline_key() for s in (plain, with_lora, fast)}
    assert len(keys) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID + 'kind = "inpaint"\n', "'kind' 'inpaint'"),
        (VALID + 'kind = "controlnet"\n', "'controlnet' .* is required"),
        (VALID + 'controlnet = "x/y"\n', "'controlnet' applies to kind = 'controlnet'"),
        (EDIT + 'controlnet = "x/y"\n', "'controlnet' applies to kind = 'controlnet'"),
        (EDIT + "canny_low = 10\n", "'canny_low' applies to kind = 'controlnet'"),
        (CONTROLNET + 'control = "depth"\n', "'control' 'depth'"),
        (CONTROLNET + "canny_low = 200\ncanny_high = 100\n", "canny_low"),
        (CONTROLNET + "controlnet_scale = -0.5\n", "'controlnet_scale' must be >= 0"),
        (VALID + 'kind = "edit"\n', "'pipeline' .* is required"),
        (VALID + 'pipeline = "QwenImageEditPipeline"\n', "'pipeline' applies to kind = 'edit'"),
        (EDIT.replace("StableDiffusionInstructPix2Pix", "StableDiffusionXL"), "'pipeline'"),
        (EDIT + "strength = 0.5\n", "'strength' applies to img2img"),
        (QWEN + "image_guidance = 1.5\n", "'image_guidance' is not taken"),
        (VALID + "image_guidance = 1.5\n", "'image_guidance' applies to kind = 'edit'"),
        (EDIT + "image_guidance = -1.0\n", "'image_guidance' must be >= 0"),
        (QWEN + "max_batch = 4\n", "one photo per call"),
        (QWEN + 'scheduler = "LCMScheduler"\n', "'scheduler' cannot be changed"),
        (VALID + 'scheduler = "FancyScheduler"\n', "'scheduler' 'FancyScheduler'"),
        (VALID + "max_batch = 0\n", "'max_batch' must be >= 1"),
        (VALID + "guidance = -1.0\n", "'guidance' must be >= 0"),
        (VALID + "fuse_loras = true\n", "'fuse_loras' needs 'loras'"),
        (VALID + 'fuse_loras = "yes"\n', "'fuse_loras' has the wrong type"),
        (VALID + LORA + "scale = -0.8\n", r"loras\[0\]: 'scale' must be a number >= 0"),
        (VALID + LORA + 'colour = "red"\n', r"loras\[0\]: unknown key 'colour'"),
        (VALID + "[[styles.sketch.loras]]\nscale = 0.8\n", r"loras\[0\]: 'weights'"),
        (VALID + 'loras = "some/lora"\n', "'loras' has the wrong type"),
        (VALID + "max_batch = 2.5\n", "'max_batch' has the wrong type"),
    ],
    ids=[
        "unknown-kind",
        "controlnet-without-model",
        "controlnet-key-on-img2img",
        "controlnet-key-on-edit",
        "canny-on-edit",
        "unknown-control",
        "canny-low-above-high",
        "negative-controlnet-scale",
        "edit-without-pipeline",
        "pipeline-on-img2img",
        "pipeline-not-allowed",
        "strength-on-edit",
        "image-guidance-not-taken",
        "image-guidance-on-img2img",
        "negative-image-guidance",
        "max-batch-above-one-photo",
        "scheduler-on-flow-model",
        "scheduler-not-allowed",
        "max-batch-zero",
        "negative-guidance",
        "fuse-without-loras",
        "fuse-not-bool",
        "negative-lora-scale",
        "lora-unknown-key",
        "lora-without-weights",
        "loras-not-a-list",
        "max-batch-not-integer",
    ],
)
def test_impossible_combinations_name_the_style_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(StylesError, match="style 'sketch'.*" + message):
        load_styles(write(tmp_path, text))
