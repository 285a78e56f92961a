"""The classic CPU look, the fake backends and make_backend (no torch, no weights)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tasks.backends import make_backend
from tasks.backends.classic import ClassicBackend, ClassicParams
from tasks.backends.fakes import NullBackend, SleepBackend
from tasks.styles import StylePreset, load_styles

pytestmark = pytest.mark.unit

STYLES = load_styles()
GHIBLI = STYLES["ghibli"]


def photo(w: int = 320, h: int = 240, seed: int = 0) -> Image.Image:
    """A noisy gradient with a disc and a bar: texture, flat areas and hard edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([60 + 150 * x / w, 90 + 120 * y / h, 200 - 100 * x / w], axis=-1)
    img[(x - w / 3) ** 2 + (y - h / 2) ** 2 < (h / 4) ** 2] = (220, 170, 140)
    img[int(h * 0.7) : int(h * 0.8), w // 2 :] = (30, 40, 30)
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.mark.parametrize("style", list(STYLES.values()), ids=list(STYLES))
def test_output_matches_input_size_and_mode(style: StylePreset) -> None:
    src = photo()
    (out,) = ClassicBackend().stylize([src], style)
    assert (out.size, out.mode) == (src.size, "RGB")


@pytest.mark.parametrize("style", list(STYLES.values()), ids=list(STYLES))
def test_output_differs_substantially(style: StylePreset) -> None:
    src = photo()
    (out,) = ClassicBackend().stylize([src], style)
    assert mean_abs_diff(src, out) > 8.0  # a visible restyle, not a light blur


def test_output_is_flatter_than_input() -> None:
    # Cartoon = fewer, flatter colours: the noise in the photo must be largely gone.
    src = photo()
    (out,) = ClassicBackend().stylize([src], GHIBLI)
    assert roughness(out) < roughness(src) / 3


def roughness(img: Image.Image) -> float:
    """Mean absolute difference between horizontally adjacent pixels."""
    return float(np.abs(np.diff(np.asarray(img, np.float32), axis=1)).mean())


def test_presets_give_different_looks() -> None:
    src = photo()
    ghibli, arcane = (ClassicBackend().stylize([src], STYLES[n])[0] for n in ("ghibli", "arcane"))
    assert mean_abs_diff(ghibli, arcane) > 3.0


def test_batch_of_three_in_order() -> None:
    srcs = [photo(200, 150, seed=1), photo(90, 160, seed=2).rotate(90), photo(64, 64, seed=3)]
    srcs[2] = Image.new("RGB", (64, 64), (250, 20, 20))
    outs = ClassicBackend().stylize(srcs, GHIBLI)
    assert [o.size for o in outs] == [s.size for s in srcs]
    # Each output is nearest to its own input.
    for i, out in enumerate(outs):
        dists = [mean_abs_diff(out.resize(s.size), s) for s in srcs]
        assert int(np.argmin(dists)) == i


def test_deterministic() -> None:
    src = photo()
    a, b = (ClassicBackend().stylize([src], GHIBLI)[0] for _ in range(2))
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "CMYK", "I;16"])
def test_other_modes_become_rgb(mode: str) -> None:
    src = photo().convert(mode)
    (out,) = ClassicBackend().stylize([src], GHIBLI)
    assert (out.size, out.mode) == (src.size, "RGB")


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (2, 300), (1500, 3)])
def test_tiny_and_thin_images(size: tuple[int, int]) -> None:
    (out,) = ClassicBackend().stylize([photo(*size)], GHIBLI)
    assert (out.size, out.mode) == (size, "RGB")


def test_empty_batch() -> None:
    assert ClassicBackend().stylize([], GHIBLI) == []


def test_params_default_and_clamp() -> None:
    assert ClassicParams.from_style({}) == ClassicParams()
    wild = ClassicParams.from_style({"levels": 1000, "line": -3, "warmth": 9, "smooth": 2.7})
    assert (wild.levels, wild.line, wild.warmth, wild.smooth) == (64, 0.0, 1.0, 2)


def test_bundled_classic_keys_are_known() -> None:
    # from_style ignores unknown keys, so a typo in styles.toml would silently do nothing.
    known = {f.name for f in dataclasses.fields(ClassicParams)}
    for style in STYLES.values():
        assert set(style.classic) <= known, style.name


def test_null_backend_returns_rgb_copies() -> None:
    srcs = [photo(), photo(30, 20).convert("L")]
    outs = NullBackend().stylize(srcs, GHIBLI)
    assert [o.mode for o in outs] == ["RGB", "RGB"]
    assert outs[0].tobytes() == srcs[0].tobytes() and outs[0] is not srcs[0]


def test_sleep_backend_sleeps_once_per_call() -> None:
    start = time.perf_counter()
    outs = SleepBackend(ms=50).stylize([photo(), photo()], GHIBLI)
    assert 0.05 <= time.perf_counter() - start < 1.0
    assert len(outs) == 2


@pytest.mark.parametrize(
    ("name", "cls"), [("classic", ClassicBackend), ("null", NullBackend), ("sleep", SleepBackend)]
)
def test_make_backend(name: str, cls: type) -> None:
    backend = make_backend(name, sleep_ms=5)
    assert isinstance(backend, cls) and backend.name == name


def test_make_backend_passes_sleep_ms() -> None:
    assert make_backend("sleep", sleep_ms=7).ms == 7  # type: ignore[attr-defined]


def test_make_backend_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown backend 'gan'"):
        make_backend("gan")


def test_classic_path_never_imports_torch() -> None:
    # A fresh interpreter: this test session may already have imported torch elsewhere.
    code = (
        "import sys\n"
        "from tasks.backends import make_backend\n"
        "from tasks.styles import StylePreset, load_styles\n"
        "from PIL import Image\n"
        "make_backend('classic').stylize([Image.new('RGB', (8, 8))], load_styles()['ghibli'])\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
