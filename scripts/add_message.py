"""Append a message to the catalog: scripts/add_message.py KEY 'English' 'Arabic' ['#. note']."""

from __future__ import annotations

import sys
from pathlib import Path

LOCALE = Path(__file__).resolve().parent.parent / "bots" / "core" / "locale"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add(key: str, en: str, ar: str, note: str = "") -> None:
    comment = "".join(f"#. {line}\n" for line in note.splitlines() if line)
    for lang, text in (("en", en), ("ar", ar)):
        po = LOCALE / lang / "LC_MESSAGES" / "stylebot.po"
        if f"\nmsgid {_quote(key)}\n" in po.read_text("utf-8"):
            raise SystemExit(f"{key} is already in {po}")
        with po.open("a", encoding="utf-8") as f:
            f.write(f"\n{comment}msgid {_quote(key)}\nmsgstr {_quote(text)}\n")
    with (LOCALE / "stylebot.pot").open("a", encoding="utf-8") as f:
        f.write(f'\n{comment}msgid {_quote(key)}\nmsgstr ""\n')


if __name__ == "__main__":
    add(*sys.argv[1:5])
