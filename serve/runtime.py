"""Running the whole service from one command: Redis (embedded or external), Ray (local or
``RAY_ADDRESS``) and the Serve app; stopping all of it cleanly."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from serve.redis_server import EmbeddedRedis
from serve.settings import Settings

log = logging.getLogger(__name__)
APP_NAME = "raybandit"


class Service:
    """``start()`` brings everything up and waits until ``/readyz`` answers; ``stop()`` undoes
    exactly what ``start()`` did (an external Redis or Ray cluster is left running)."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.redis: EmbeddedRedis | None = None
        self._started_ray = False
        self.stopping = stop or threading.Event()

    def start(self, timeout: float = 120.0, on_step: Callable[[str], Any] | None = None) -> str:
        step = on_step or (lambda _: None)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        # Ray's native failure-signal handler would turn SIGTERM into an abort before our
        # handler could stop Serve, Ray and Redis in order.
        os.environ.setdefault("RAY_install_failure_signal_handler", "0")
        # Ray Serve's throughput-optimized mode: measured here, /healthz through the proxy
        # went from 10.9 to 8.0 ms and a rank from 16.6 to 12.4 ms (benchmarks/serve.py).
        # Its HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY) failed to bind on loopback here.
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
        settings = self.settings
        if not settings.redis_url:
            step(f"starting embedded Redis (data in {settings.data_dir})")
            self.redis = EmbeddedRedis(settings.data_dir / "redis").start()
            settings = self.settings = settings.model_copy(update={"redis_url": self.redis.url})
        import ray
        from ray import serve as ray_serve

        from serve.app import build_app

        if not ray.is_initialized():
            step("starting Ray" + (f" (cluster {settings.ray_address})"
                                   if settings.ray_address else " (local)"))
            self._started_ray = True  # before init: a signal may interrupt it half-way
            if settings.ray_address:
                ray.init(address=settings.ray_address, log_to_driver=False)
            else:
                ray.init(include_dashboard=settings.ray_dashboard, log_to_driver=False,
                         runtime_env={"env_vars": {"OPENBLAS_NUM_THREADS": "1"}})
            _catch_signals(self.stopping)  # ray.init replaced them with its own
        step(f"starting the Serve app on {settings.url}")
        ray_serve.start(http_options={"host": settings.host, "port": settings.port},
                        logging_config={"enable_access_log": False, "log_level": "WARNING"})
        ray_serve.run(build_app(settings.model_dump(mode="json")), name=APP_NAME,
                      route_prefix="/", blocking=False)
        self._wait_ready(timeout)
        return settings.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.settings.url}/readyz"
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise KeyboardInterrupt("stopped while starting")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the service did not become ready within {timeout}s ({url})")

    def stop(self) -> None:
        import ray
        from ray import serve as ray_serve

        if ray.is_initialized():
            try:
                ray_serve.delete(APP_NAME)  # replicas run __del__: the learner checkpoints
                ray_serve.shutdown()
            except Exception as exc:  # keep going: Redis must still be stopped
                log.warning("serve shutdown: %s", exc)
        if self._started_ray:
            ray.shutdown()  # also reaps a node whose ray.init was interrupted
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def _catch_signals(stop: threading.Event) -> None:
    def _signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _signal)


def serve_forever(settings: Settings, on_step: Callable[[str], Any]) -> None:
    """Start, print the URL, block until Ctrl-C or SIGTERM, then stop everything (also when
    the signal comes while it is still starting)."""
    stop = threading.Event()
    _catch_signals(stop)
    service = Service(settings, stop)
    try:
        url = service.start(on_step=on_step)
        on_step(f"ready: {url}  (API docs {url}/docs, playground {url}/ui; Ctrl-C stops)")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        on_step("stopping")
        service.stop()
        on_step("stopped")
