"""What every benchmark reports with: percentiles, a p50/p99/max spread, markdown tables, and
the edit that replaces one `## Section` of BENCHMARKS.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS_FILE = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly between closest ranks (numpy's)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Spread:
    """p50, p99 and max of a sample, in milliseconds."""

    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Spread:
        return cls(percentile(values_ms, 50), percentile(values_ms, 99), max(values_ms))


def ms(value: float) -> str:
    """Milliseconds as a table shows them: "12.3 ms"."""
    return f"{value:.1f} ms"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table, one line per list item (header, rule, rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def replace_section(text: str, title: str, section: str) -> str:
    """`text` with the level-2 section `title` replaced by `section` (appended if absent).

    A section runs from its title line to the next line starting with "## " (or the end);
    everything else is kept byte for byte.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    body = section if section.endswith("\n") else section + "\n"
    if start is None:
        head = text if not text or text.endswith("\n") else text + "\n"
        return head + ("\n" if head.strip() else "") + body
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = lines[end:]
    return "".join(lines[:start]) + body + ("\n" if tail else "") + "".join(tail)


def write_section(title: str, section: str, path: Path = BENCHMARKS_FILE) -> Path:
    """Replace (or append) the section `title` of BENCHMARKS.md with `section`; the file's path."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(replace_section(old, title, section), encoding="utf-8")
    return path


def show(title: str, section: str, met: Sequence[bool], write: bool) -> int:
    """Print a benchmark's section and its goal count; with `write`, put it in BENCHMARKS.md."""
    print(section)
    print(f"goals: {sum(met)} met, {len(met) - sum(met)} missed")
    if write:
        print(f"wrote '{title}' to {write_section(title, section)}")
    return 0
