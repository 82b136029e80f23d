"""Starting Ray for simulator sweeps: local by default, ``RAY_ADDRESS`` for a cluster."""

from __future__ import annotations

import os


def ensure_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(
            num_cpus=os.cpu_count() or 2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"OPENBLAS_NUM_THREADS": "1"}},
        )
