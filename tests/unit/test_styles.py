"""Style presets: the bundled file and the errors a malformed styles file raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.styles import StylePreset, StylesError, load_styles

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
        (VALID + 'colour = "red"\n', "unexpected keyword"),
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
