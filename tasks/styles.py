"""Style presets, loaded from a TOML styles file (the bundled tasks/styles.toml by default)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class StylesError(ValueError):
    """The styles file is missing, malformed or names an invalid preset."""


@dataclass(frozen=True)
class StylePreset:
    name: str  # also the chat command: /ghibli
    display: dict[str, str]  # locale -> display name, "en" required
    model: str  # diffusers: hub id or local path
    prompt: str
    negative_prompt: str = ""
    strength: float = 0.6
    steps: int = 30
    guidance: float = 7.5
    size: int = 512  # the model's native square side: working shapes scale with it
    classic: dict[str, Any] = field(default_factory=dict)  # parameters of the CPU look

    def display_name(self, locale: str) -> str:
        return self.display.get(locale, self.display["en"])


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
    try:
        preset = StylePreset(name=name, **table)
    except TypeError as exc:
        raise StylesError(f"style {name!r}: {exc}") from exc
    if not isinstance(preset.display, dict) or "en" not in preset.display:
        raise StylesError(f"style {name!r}: display needs an 'en' name")
    try:
        in_range = 0.0 < preset.strength <= 1.0 and preset.steps >= 1 and preset.size % 8 == 0
    except TypeError:  # a quoted number, say: the same mistake as a wrong one
        in_range = False
    if not in_range:
        raise StylesError(f"style {name!r}: strength in (0, 1], steps >= 1, size a multiple of 8")
    return preset
