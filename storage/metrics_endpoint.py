"""The /metrics endpoint of a bot or worker process, and prometheus_client's multiprocess mode
for a worker's prefork pool: the children record into files, the main process serves them."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storage.metrics import instruments

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.registry import Collector, CollectorRegistry

    from storage.settings import Settings

log = logging.getLogger("stylebot.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread
    registry: CollectorRegistry
    collectors: tuple[Collector, ...] = ()

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for collector in self.collectors:
            self.registry.unregister(collector)


def serve_metrics(settings: Settings, role: str, *collectors: Collector) -> MetricsServer | None:
    """Serve /metrics on STYLEBOT_METRICS_PORT from a daemon thread (None when unset, or when
    the port is taken: a warning, the process goes on). Under PROMETHEUS_MULTIPROC_DIR, the
    values every process recorded there; else this process's, plus `collectors`."""
    if settings.metrics_port is None:
        return None
    import prometheus_client as pc
    from prometheus_client import multiprocess

    registry = pc.REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        instruments()  # the families exist (unlabelled ones at 0) before anything is recorded
    for collector in collectors:
        registry.register(collector)
    address = "0.0.0.0"  # Prometheus scrapes it from another host or container
    try:
        server, thread = pc.start_http_server(settings.metrics_port, address, registry)
    except OSError as exc:  # e.g. a bot's --with-worker child, given the bot's own port
        log.warning(
            "metrics_unavailable role=%s port=%d error=%s", role, settings.metrics_port, exc
        )
        for collector in collectors:
            registry.unregister(collector)
        return None
    log.info("metrics_serving role=%s address=%s port=%d", role, address, server.server_port)
    return MetricsServer(server, thread, registry, collectors)


def use_multiprocess_dir() -> Path:
    """Values to files, one per process, under PROMETHEUS_MULTIPROC_DIR (a fresh temporary
    directory unless set), emptied of a previous run's. Call before anything records, and
    before the worker forks its pool: the children inherit the setting."""
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given or tempfile.mkdtemp(prefix="stylebot-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    if not given:  # ours: removed when this process exits (not when a forked child does)
        atexit.register(_remove_when_exiting, path, os.getpid())
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    if "prometheus_client.values" in sys.modules:  # imported already: values made from now on
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return path


def _remove_when_exiting(path: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def process_stopping(pid: int | None = None) -> None:
    """A pool child is stopping: its gauges (GPU memory) leave the endpoint with it."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def forget_dead_processes() -> None:
    """The gauges of pool children that died without stopping (killed, crashed)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return
    for file in Path(path).glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            process_stopping(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
