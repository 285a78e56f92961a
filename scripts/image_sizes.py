"""The Python packages of the two Docker images (docker/Dockerfile), sized from their wheels.

    python3 scripts/image_sizes.py [--write]

Resolves each FLAVOR's requirements as the Dockerfile builds them (CPython 3.11, manylinux
x86_64, PyPI only, no local pip configuration), then reads every wheel's size and the sum of its
entries' uncompressed sizes from the zip central directory, fetched with HTTP Range requests
rather than whole downloads. --write puts the result in BENCHMARKS.md ("## Image sizes").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.report import table, write_section  # noqa: E402

TITLE = "## Image sizes"
MB = 1_000_000
CHUNK = 64 * 1024  # bytes per ranged request at least: the zip's end records and small directories
# python:3.11-slim-bookworm has glibc 2.36, so pip there takes manylinux_2_5 ... manylinux_2_36.
PLATFORMS = [f"manylinux_2_{m}_x86_64" for m in range(36, 4, -1)] + [
    f"manylinux{legacy}_x86_64" for legacy in ("2014", "2010", "1")
]
BASE_MB = 125  # python:3.11-slim-bookworm, uncompressed, approximately: see section()


def requirements(flavor: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What the Dockerfile's builder stage installs for `flavor` (gpu: plus two extras)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    gpu = extras["diffusers"] + extras["quantize"] if flavor == "gpu" else []
    return list(project["dependencies"]) + gpu


def resolve(reqs: list[str]) -> dict[str, Any]:
    """pip's installation report for `reqs` on the image's platform, as a fresh Docker build
    would resolve them: no pip config files, no PIP_* variables (constraints, local indexes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        cmd += ["--quiet", "--disable-pip-version-check", "--report", str(report)]
        cmd += ["--only-binary=:all:", *platforms, "--python-version", "3.11"]
        cmd += ["--implementation", "cp", "--target", str(Path(tmp) / "target"), *reqs]
        subprocess.run(cmd, env=env, check=True)
        return json.loads(report.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    url: str


def wheels(report: dict[str, Any]) -> list[Wheel]:
    """The wheels a pip report (`pip install --report`) installs."""
    found = []
    for item in report["install"]:
        url = item["download_info"]["url"]
        if not url.split("#")[0].endswith(".whl"):
            raise ValueError(f"not a wheel: {url}")
        found.append(Wheel(item["metadata"]["name"], item["metadata"]["version"], url))
    return found


Fetch = Callable[[int, int], bytes]  # the bytes [start, end) of a file


class RangeReader(io.RawIOBase):
    """A read-only, seekable file over `fetch`, keeping the last window it fetched. Each miss
    fetches at least CHUNK bytes, reaching back from the end near it, so zipfile's reads of the
    end records (and small central directories) cost one fetch."""

    def __init__(self, size: int, fetch: Fetch, tail: bytes = b"") -> None:
        self.size, self.fetches = size, 0
        self._fetch, self._pos = fetch, 0
        self._start, self._buf = size - len(tail), tail

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if end <= self._pos:
            return b""
        if not self._start <= self._pos or end > self._start + len(self._buf):
            start = min(self._pos, max(0, self.size - CHUNK))
            stop = max(end, min(self.size, start + CHUNK))
            self._start, self._buf = start, self._fetch(start, stop)
            self.fetches += 1
        data = self._buf[self._pos - self._start : end - self._start]
        self._pos = end
        return data


def _get(url: str, span: str) -> tuple[int, str, bytes]:
    """GET the byte range `span` ("first-last", or "-n" for the last n): status, range, body."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={span}"})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.headers.get("Content-Range", ""), response.read()
        except OSError:
            if attempt == 2:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def open_url(url: str) -> RangeReader:
    """A RangeReader over a URL: ranged GETs, or the whole file if the server ignores Range."""
    status, content_range, tail = _get(url, f"-{CHUNK}")
    if status != 206:
        return RangeReader(len(tail), lambda start, end: tail[start:end], tail)
    size = int(content_range.rsplit("/", 1)[1])
    return RangeReader(size, lambda start, end: _get(url, f"{start}-{end - 1}")[2], tail)


@dataclass(frozen=True)
class Sizes:
    download: int
    installed: int


def wheel_sizes(reader: RangeReader) -> Sizes:
    """The wheel's file size and the sum of its entries' uncompressed sizes."""
    with zipfile.ZipFile(reader) as wheel:
        return Sizes(reader.size, sum(entry.file_size for entry in wheel.infolist()))


def mb(n: int) -> str:
    return f"{n / MB:,.1f}"


def total(found: list[Wheel], sizes: dict[str, Sizes]) -> Sizes:
    picked = [sizes[w.url] for w in found]
    return Sizes(sum(s.download for s in picked), sum(s.installed for s in picked))


def row(label: str, version: str, sizes: Sizes) -> list[str]:
    return [label, version, mb(sizes.download), mb(sizes.installed)]


def flavor_table(found: list[Wheel], sizes: dict[str, Sizes], top: int = 8) -> list[str]:
    """The `top` packages by installed size, the rest in one row, and the total."""
    ranked = sorted(found, key=lambda w: sizes[w.url].installed, reverse=True)
    rows = [row(w.name, w.version, sizes[w.url]) for w in ranked[:top]]
    rows.append(row(f"{len(ranked[top:])} others", "", total(ranked[top:], sizes)))
    rows.append(row(f"all {len(found)}", "", total(found, sizes)))
    return table(["package", "version", "download MB", "installed MB"], rows)


def section(found: dict[str, list[Wheel]], sizes: dict[str, Sizes]) -> str:
    cpu, gpu = total(found["cpu"], sizes), total(found["gpu"], sizes)
    with_base = (gpu.installed / MB + BASE_MB) / (cpu.installed / MB + BASE_MB)
    lines = [
        TITLE,
        "",
        "`.venv/bin/python scripts/image_sizes.py --write` — measured "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}. The Python packages each image's /opt/venv "
        "gets (docker/Dockerfile): pip's resolution, for CPython 3.11 on manylinux x86_64 from "
        "PyPI, of pyproject's dependencies (cpu, the slim image) and of those plus the `diffusers` "
        "and `quantize` extras (gpu). PyPI's torch==2.13.0 (a CUDA 13.0 build, with its nvidia-* "
        "wheels) stands in for the PyTorch index's 2.13.0+cu130. Download = the wheel files; "
        "installed = the sum of their entries' uncompressed sizes, read from each wheel's zip "
        "central directory through HTTP Range requests. MB = 10^6 bytes.",
    ]
    for flavor, label in (("cpu", "cpu (slim image)"), ("gpu", "gpu")):
        lines += ["", f"**{label}**, the 8 largest packages installed:", ""]
        lines += flavor_table(found[flavor], sizes)
    lines += [
        "",
        f"**Installed: cpu {mb(cpu.installed)} MB, gpu {mb(gpu.installed)} MB, "
        f"{gpu.installed / cpu.installed:.1f}× (download: cpu {mb(cpu.download)} MB, "
        f"gpu {mb(gpu.download)} MB).** With an approximate {BASE_MB} MB base layer added to "
        f"both: {with_base:.1f}×.",
        "",
        "Not included: the base OS layer, python:3.11-slim-bookworm, about "
        f"{BASE_MB} MB uncompressed (an approximation, not measured: Docker Hub can't be reached "
        "from where this ran; `docker image inspect python:3.11-slim-bookworm --format "
        "'{{.Size}}'` gives it); the .pyc files pip compiles at install time; the pip (and, on "
        "cpu, the setuptools) that `python -m venv` puts in the venv; stylebot itself.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        flavors = ("cpu", "gpu")
        reports = pool.map(lambda flavor: resolve(requirements(flavor)), flavors)
        found = {flavor: wheels(report) for flavor, report in zip(flavors, reports, strict=True)}
        urls = sorted({w.url for ws in found.values() for w in ws})
        sizes = dict(zip(urls, pool.map(lambda url: wheel_sizes(open_url(url)), urls), strict=True))
    text = section(found, sizes)
    print(text)
    if args.write:
        print(f"wrote '{TITLE}' to {write_section(TITLE, text)}")
    print(f"took {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
