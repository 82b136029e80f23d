"""Shared fixtures: paths to the real data beside the repository, and one Ray per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def dsjson_dir() -> Path:
    folder = SHARED_DATA / "dsjson"
    if not folder.is_dir():
        pytest.skip(f"real DSJSON samples not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray, started once (no dashboard: it costs ~1 GB here)."""
    import ray

    from serve.runtime import init_ray

    if not ray.is_initialized():  # configured the way `raybandit serve` starts it
        init_ray(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()
