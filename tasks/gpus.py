"""One GPU per worker replica on a multi-GPU host: `docker compose up --scale worker=N`.

Every replica sees all of the host's GPUs and claims one free index at start: an exclusive
flock on `<claim dir>/gpu-<index>.lock`, a directory the replicas share (a named volume). The
lock belongs to the open file, which the worker and its pool children keep open for their whole
life; the kernel drops it when the last of them exits, however it dies, so a restarted or
replaced replica finds the GPU free again. The claimed index goes into CUDA_VISIBLE_DEVICES
before torch is imported anywhere, so the worker's "cuda" is that one GPU.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from storage.settings import SettingsError

log = logging.getLogger("stylebot.worker")

RETRY_S = 2.0


@dataclass(frozen=True)
class Claim:
    index: str
    fd: int  # kept open (and inherited by the pool's children): closing it frees the GPU


def gpu_indices(listed: str) -> list[str]:
    """The GPUs to choose from: STYLEBOT_GPUS when set ("0,1,2"), else what nvidia-smi lists."""
    if listed.strip():
        return [part.strip() for part in listed.split(",") if part.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def try_claim(claim_dir: Path, indices: list[str]) -> Claim | None:
    """Lock the first free GPU index in `indices`; None when every one is held."""
    claim_dir.mkdir(parents=True, exist_ok=True)
    for index in indices:
        fd = os.open(claim_dir / f"gpu-{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        return Claim(index, fd)
    return None


def claim_gpu(claim_dir: Path, listed: str, wait_s: float) -> Claim:
    """Claim a GPU (waiting up to `wait_s` for one to be freed) and make it this process's
    only visible CUDA device. SettingsError (one line) when there is none to claim."""
    indices = gpu_indices(listed)
    if not indices:
        raise SettingsError(
            "STYLEBOT_GPU_CLAIM_DIR: no GPU to claim (nvidia-smi lists none); give the container "
            "the host's GPUs, or list their indices in STYLEBOT_GPUS"
        )
    deadline = time.monotonic() + wait_s
    while (claim := try_claim(claim_dir, indices)) is None:
        if time.monotonic() >= deadline:
            n = len(indices)
            which = f"all {n} GPUs ({','.join(indices)}) are" if n > 1 else f"GPU {indices[0]} is"
            raise SettingsError(
                f"STYLEBOT_GPU_CLAIM_DIR: {which} claimed by other workers; run at most "
                f"{n} worker replica{'s' if n > 1 else ''} here"
            )
        time.sleep(RETRY_S)
    os.environ["CUDA_VISIBLE_DEVICES"] = claim.index
    log.info("gpu_claimed index=%s of=%s", claim.index, ",".join(indices))
    return claim
