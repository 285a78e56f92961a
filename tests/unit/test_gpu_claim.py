"""`--scale worker=N` on an N-GPU host: each worker process claims its own GPU index through
locks in a shared directory, holds it for life, and frees it however it dies. Real processes,
fake GPU indices (STYLEBOT_GPUS), no GPU needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.settings import SettingsError
from tasks.gpus import claim_gpu, gpu_indices, try_claim

pytestmark = pytest.mark.unit

# A worker's start, reduced to the claim: claim, report the index, then live until killed.
HOLDER = """
import os, sys, time
from pathlib import Path
from tasks.gpus import claim_gpu
from storage.settings import SettingsError
try:
    claim_gpu(Path(sys.argv[1]), sys.argv[2], wait_s=float(sys.argv[3]))
except SettingsError as exc:
    print("refused", exc, flush=True)
    sys.exit(3)
if os.fork() == 0:  # a pool child inherits the lock, as Celery's prefork children do
    time.sleep(600)
print("claimed", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(600)
"""


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start(procs: list[subprocess.Popen[str]], claims: Path, gpus: str, wait_s: float = 0) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(claims), gpus, str(wait_s)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test kills worker and child
    )
    procs.append(proc)
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_replicas_take_different_gpus_and_the_one_too_many_is_told(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    claims = tmp_path / "claims"
    got = [start(holders, claims, "0,1,2") for _ in range(3)]
    assert sorted(got) == ["claimed 0", "claimed 1", "claimed 2"]
    line = start(holders, claims, "0,1,2")
    assert line.startswith("refused STYLEBOT_GPU_CLAIM_DIR: all 3 GPUs (0,1,2) are claimed")
    assert "run at most 3 worker replicas" in line
    assert holders[-1].wait(10) == 3


def test_a_killed_worker_frees_its_gpu_only_when_its_children_are_gone_too(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    claims = tmp_path / "claims"
    assert start(holders, claims, "0,1") == "claimed 0"
    assert start(holders, claims, "0,1") == "claimed 1"
    first = holders[0]
    first.send_signal(signal.SIGKILL)  # the worker dies; its pool child still holds the lock
    first.wait()
    assert try_claim(claims, ["0", "1"]) is None
    os.killpg(first.pid, signal.SIGKILL)  # the whole container goes
    time.sleep(0.2)
    assert start(holders, claims, "0,1") == "claimed 0"  # a replacement takes the freed GPU


def test_a_replica_waits_for_a_gpu_to_be_freed(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    claims = tmp_path / "claims"
    assert start(holders, claims, "5") == "claimed 5"
    waiting = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(claims), "5", "30"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    holders.append(waiting)
    time.sleep(1.0)
    assert waiting.poll() is None  # still waiting, not refused
    os.killpg(holders[0].pid, signal.SIGKILL)  # a rolling restart: the old replica goes
    assert waiting.stdout is not None and waiting.stdout.readline().strip() == "claimed 5"


def test_no_gpu_at_all_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert gpu_indices("") == []
    assert gpu_indices(" 2, 3 ") == ["2", "3"]
    with pytest.raises(SettingsError, match="no GPU to claim"):
        claim_gpu(tmp_path / "claims", "", wait_s=0)
