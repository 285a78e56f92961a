"""Content Credentials through the worker: its job function, its process, its start-up check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bots.console.adapter import ConsoleChat
from bots.core import Core, Runtime
from storage.db import transaction
from storage.models import FINISHED, Job
from tasks.backends.fakes import NullBackend
from tasks.batch import run_next
from tasks.stylize import WorkerContext
from tasks.worker import spawn_worker, stop_worker
from tests.c2pautil import Chain, codes, corrupt, make_chain, read_manifest
from tests.conftest import make_photo, pretend_a_worker_is_live
from tests.services import live_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("c2pa"))


def test_cli_worker_with_a_corrupt_key_is_one_line(tmp_path: Path, chain: Chain) -> None:
    """As an operator meets it: `stylebot worker` prints one line and exits 2."""
    key = tmp_path / "key.pem"
    key.write_bytes(corrupt(chain.key.read_bytes()))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")},
        "STYLEBOT_DATA_DIR": str(tmp_path / "data"),
        "STYLEBOT_C2PA_CERT": str(chain.cert),
        "STYLEBOT_C2PA_KEY": str(key),
    }

    def stylebot(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bots.cli", command],
            cwd=tmp_path,  # no .env of the repository's
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert stylebot("migrate").returncode == 0  # the worker needs its schema first
    proc = stylebot("worker")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylebot: STYLEBOT_C2PA_KEY: "), proc.stderr


@pytest.mark.sql
def test_worker_signs_what_it_stores(
    runtime: Runtime, core: Core, photo: Path, chain: Chain
) -> None:
    """Through the worker's job function: a job's result file carries the manifest."""
    settings = runtime.settings.model_copy(update={"c2pa_cert": chain.cert, "c2pa_key": chain.key})
    reply = ConsoleChat(core, "console:prov").handle_line(f"/ghibli {photo}")
    assert reply is not None and reply.job_id
    ctx = WorkerContext.build(settings, backend=NullBackend())
    try:
        _, claimed = run_next(ctx, f"task-{reply.job_id}")
    finally:
        ctx.close()
    assert claimed == [reply.job_id]
    with transaction(runtime.engine) as s:
        job = s.get(Job, reply.job_id)
        assert job is not None and job.status == "done" and job.result_path
    manifest, results, _ = read_manifest(Path(job.result_path).read_bytes())
    assert codes(results, "failure") == {"signingCredential.untrusted"}
    assert manifest["claim_generator_info"][0]["name"] == "stylebot"


def test_real_worker_process_signs_results(tmp_path: Path, chain: Chain) -> None:
    """A `stylebot worker` process (checked at start, signing in its forked pool child)."""
    env = {"STYLEBOT_BACKEND": "classic", "STYLEBOT_C2PA_CERT": str(chain.cert)}
    with live_stack(tmp_path, **env, STYLEBOT_C2PA_KEY=str(chain.key)) as (rt, worker_env):
        pretend_a_worker_is_live(rt)
        photo = make_photo(tmp_path / "in.jpg")
        reply = ConsoleChat(Core(rt), "console:prov").handle_line(f"/ghibli {photo}")
        assert reply is not None and reply.job_id
        worker = spawn_worker(tmp_path / "worker.log", env=worker_env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with transaction(rt.engine) as s:
                    job = s.get(Job, reply.job_id)
                if job is not None and job.status in FINISHED:
                    break
                time.sleep(0.2)
        finally:
            stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()
    assert job is not None and job.status == "done" and job.result_path, log
    manifest, results, _ = read_manifest(Path(job.result_path).read_bytes())
    assert codes(results, "failure") == {"signingCredential.untrusted"}
    assert manifest["claim_generator_info"][0]["name"] == "stylebot"
    assert "provenance_unsigned" not in log
