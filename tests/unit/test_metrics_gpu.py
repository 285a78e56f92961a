"""GPU memory gauges from the diffusers backend: set on CUDA, absent on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tasks.batch import record_gpu_memory

pytestmark = pytest.mark.unit

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tasks.backends import PipelineOptions  # noqa: E402
from tasks.backends.diffusers import DiffusersBackend  # noqa: E402
from tests.tiny_pipeline import build_tiny_pipeline  # noqa: E402
from tests.unit.test_diffusers_backend import photo, preset  # noqa: E402


def test_a_cpu_backend_reports_no_gpu_memory() -> None:
    backend = DiffusersBackend(PipelineOptions(device="cpu"))
    assert backend.cuda_memory() is None
    before = REGISTRY.get_sample_value("stylebot_gpu_memory_peak_bytes")
    record_gpu_memory(backend)
    assert REGISTRY.get_sample_value("stylebot_gpu_memory_peak_bytes") == before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_backend_sets_gpu_memory_in_use_and_peak(tmp_path: Path) -> None:
    backend = DiffusersBackend(PipelineOptions(device="cuda"))
    backend.stylize([photo(64, 64), photo(48, 64, seed=1)], preset(build_tiny_pipeline(tmp_path)))
    record_gpu_memory(backend)
    used = REGISTRY.get_sample_value("stylebot_gpu_memory_used_bytes")
    peak = REGISTRY.get_sample_value("stylebot_gpu_memory_peak_bytes")
    assert used is not None and peak is not None
    assert 0 < used <= peak
    assert used == torch.cuda.memory_allocated()  # the weights stay loaded
