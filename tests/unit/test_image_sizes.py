"""scripts/image_sizes.py's offline parts: the pip report, the requirements per flavor, the
range reader (over a local file instead of HTTP), the wheel sizes and the tables."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "image_sizes.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_sizes", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sizes_script = _load()
RangeReader = sizes_script.RangeReader
Sizes = sizes_script.Sizes
Wheel = sizes_script.Wheel


def _item(name: str, version: str, url: str) -> dict[str, object]:
    return {
        "download_info": {"url": url, "archive_info": {"hash": "sha256=00"}},
        "metadata": {"name": name, "version": version},
        "requested": False,
    }


def _file_reader(path: Path, prefill_tail: int = 0) -> Any:
    """A RangeReader over a local file, the way open_url builds one over a URL."""
    data = path.read_bytes()

    def fetch(start: int, end: int) -> bytes:
        assert 0 <= start < end <= len(data)
        return data[start:end]

    return RangeReader(len(data), fetch, data[len(data) - prefill_tail :] if prefill_tail else b"")


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, content in files.items():
            wheel.writestr(name, content)
    return path


def test_wheels_come_from_the_report_in_order() -> None:
    report = {
        "version": "1",
        "install": [
            _item("torch", "2.13.0", "https://files.example/torch-2.13.0-cp311-cp311-x.whl"),
            _item("six", "1.17.0", "https://files.example/six-1.17.0-py3-none-any.whl#sha=1"),
        ],
    }
    assert sizes_script.wheels(report) == [
        Wheel("torch", "2.13.0", "https://files.example/torch-2.13.0-cp311-cp311-x.whl"),
        Wheel("six", "1.17.0", "https://files.example/six-1.17.0-py3-none-any.whl#sha=1"),
    ]


def test_a_source_distribution_in_the_report_is_refused() -> None:
    report = {"install": [_item("odd", "1.0", "https://files.example/odd-1.0.tar.gz")]}
    with pytest.raises(ValueError, match="not a wheel"):
        sizes_script.wheels(report)


def test_the_gpu_flavor_adds_the_two_extras(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=1.26"]\n'
        '[project.optional-dependencies]\ndiffusers = ["torch==2.13.0"]\n'
        'quantize = ["torchao>=0.14"]\ndev = ["pytest"]\n',
        encoding="utf-8",
    )
    assert sizes_script.requirements("cpu", pyproject) == ["numpy>=1.26"]
    assert sizes_script.requirements("gpu", pyproject) == [
        "numpy>=1.26",
        "torch==2.13.0",
        "torchao>=0.14",
    ]


def test_the_range_reader_reads_seeks_and_keeps_its_window(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 1024)  # 256 KiB
    reader = _file_reader(path)
    assert reader.seek(-3, 2) == 256 * 1024 - 3 and reader.read() == bytes([253, 254, 255])
    assert reader.read(10) == b"" and reader.fetches == 1
    reader.seek(-100, 2)
    assert reader.read(4) == bytes([156, 157, 158, 159]) and reader.fetches == 1  # still cached
    reader.seek(1)
    assert reader.read(3) == bytes([1, 2, 3]) and reader.tell() == 4 and reader.fetches == 2
    reader.seek(2, 1)
    assert reader.read(1) == bytes([6]) and reader.fetches == 2
    with pytest.raises(ValueError):
        reader.seek(-1)


def test_a_small_wheel_is_sized_from_one_fetch(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": b"x = 1\n" * 500, "pkg/data.bin": bytes(10_000)}
    path = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl", files)
    reader = _file_reader(path)
    assert sizes_script.wheel_sizes(reader) == Sizes(path.stat().st_size, 13_000)
    assert reader.fetches == 1


def test_a_wheel_with_a_large_central_directory_matches_zipfile_on_disk(tmp_path: Path) -> None:
    files = {f"pkg/{'deep/' * 12}module_{i:05}.py": b"pass\n" * (i % 7) for i in range(3000)}
    path = _wheel(tmp_path / "big-1.0-py3-none-any.whl", files)
    with zipfile.ZipFile(path) as wheel:
        expected = sum(entry.file_size for entry in wheel.infolist())
    reader = _file_reader(path, prefill_tail=sizes_script.CHUNK)  # open_url's first response
    assert sizes_script.wheel_sizes(reader) == Sizes(path.stat().st_size, expected)
    assert reader.fetches == 1  # the central directory (> CHUNK) in one more request


def test_the_flavor_table_lists_the_largest_then_the_rest_and_all() -> None:
    found = [Wheel(f"p{i}", "1.0", f"u{i}") for i in range(10)]
    sizes = {f"u{i}": Sizes(i * 1_000_000, i * 2_000_000) for i in range(10)}
    lines = sizes_script.flavor_table(found, sizes, top=2)
    assert lines[2:] == [
        "| p9 | 1.0 | 9.0 | 18.0 |",
        "| p8 | 1.0 | 8.0 | 16.0 |",
        "| 8 others |  | 28.0 | 56.0 |",
        "| all 10 |  | 45.0 | 90.0 |",
    ]


def test_the_section_states_both_totals_the_ratio_and_the_base_layer() -> None:
    found = {"cpu": [Wheel("a", "1", "ua")], "gpu": [Wheel("a", "1", "ua"), Wheel("t", "2", "ut")]}
    sizes = {"ua": Sizes(50_000_000, 100_000_000), "ut": Sizes(400_000_000, 900_000_000)}
    text = sizes_script.section(found, sizes)
    assert text.startswith("## Image sizes\n") and text.endswith("\n")
    assert "**Installed: cpu 100.0 MB, gpu 1,000.0 MB, 10.0×" in text
    assert "python:3.11-slim-bookworm, about 125 MB" in text
