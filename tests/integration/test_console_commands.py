"""`stylebot demo` and `stylebot chat` as a person runs them: embedded broker, a worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bots.console.demo import sample_photo
from tests.conftest import make_photo

pytestmark = pytest.mark.integration


def _run(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_demo_writes_a_styled_image_that_differs_from_the_input(tmp_path: Path) -> None:
    out = tmp_path / "styled.jpg"
    proc = _run(["demo", "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 left today" in proc.stdout and "styling on the worker" in proc.stdout
    before = np.asarray(Image.open(sample_photo()).convert("RGB"), dtype=np.int16)
    after = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    assert after.shape == before.shape
    assert np.abs(after - before).mean() > 5
    assert not list((tmp_path / "data" / "images" / "inputs").glob("*"))  # input deleted


def test_chat_session_round_trip(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "me.jpg")
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    script = f"/styles\n/ghibli {pdf}\n/ghibli {photo}\n/quota\n"
    proc = _run(["chat", "--user", "console:tester"], cwd=tmp_path, stdin=script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "/ghibli" in out and "doesn't look like a photo" in out
    assert "queued — you are #1" in out
    assert "Here is your Ghibli image. 2 left today." in out
    assert out.count("[image]") == 1
