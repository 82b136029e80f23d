"""Running the whole service from one command: Redis (embedded or external), Ray (local or
``RAY_ADDRESS``) and the Serve app; stopping all of it cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil

from serve.ray_hooks import prepare_worker
from serve.redis_server import (
    EmbeddedRedis,
    durability_warnings,
    free_port,
    port_is_free,
    process_running,
)
from serve.settings import Settings

log = logging.getLogger(__name__)
APP_NAME = "raybandit"


# Ray Serve's fastest supported ingress on this Ray version, read by Ray's own processes from
# their environment (inherited from the process that starts Ray). Measured with
# `python -m benchmarks.serve` (see the README): through the URL the service prints, rank went
# from ~116 to ~350 requests/s at 8 concurrent when HAProxy replaced the Python proxy.
SERVE_ENVIRONMENT = {
    # gRPC between deployments, user code on the replica's event loop, direct ingress ...
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # ... and HAProxy on the service's port in front of the replicas' own HTTP servers,
    # instead of the Python proxy (~8 ms per request here).
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # HAProxy's per-request metrics are parsed in Python; /v1/stats has what we need.
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
    # A stopping replica keeps its port open this long so load balancers can notice; the
    # default 30 s made every stop take ~37 s, HAProxy on one node notices within 0.1 s.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    # Ray starts idle workers for a new driver ahead of need; the service's actors start their
    # own, so those two idle processes were ~90 MB of PSS for nothing.
    "RAY_prestart_worker_first_driver": "0",
    # Throughput-optimized Serve buffers 1,000 log records per process before writing them;
    # with no access log only real messages are logged, and a replica that is killed would
    # take its last ones with it.
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
    # Ray's native failure-signal handler would turn SIGTERM into an abort before our
    # handler could stop Serve, Ray and Redis in order.
    "RAY_install_failure_signal_handler": "0",
    "OPENBLAS_NUM_THREADS": "1",
}
# Ports Ray's processes bind on the service's host, each picked free at every start.
SERVICE_PORTS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT",
                 "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")
RUNTIME_ENV = {
    "env_vars": {"OPENBLAS_NUM_THREADS": "1"},
    "worker_process_setup_hook": "serve.ray_hooks.prepare_worker",
}


def configure_ray_environment() -> None:
    """Set the Serve environment (unless the user set it) before Ray starts."""
    for key, value in SERVE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def init_ray(address: str | None = None, **options: Any) -> None:
    """Start a local Ray (or join ``address``) configured for the service."""
    import ray

    configure_ray_environment()
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env=RUNTIME_ENV)
        return
    # Free ports keep two services on a machine apart. Ray Serve's fallback proxy (HAProxy's
    # backup server while no ranking replica is up) would take a fixed 8500 with
    # SO_REUSEPORT: a second service's bound the same port, and the kernel handed each
    # HAProxy's fallback requests to either service. Only Ray's processes, started now,
    # keep these: a service started from this process later (a test's subprocess) must
    # pick its own.
    ports = {key: str(free_port()) for key in SERVICE_PORTS if key not in os.environ}
    os.environ.update(ports)
    try:
        with _without_unused_head_processes():
            ray.init(log_to_driver=False, runtime_env=RUNTIME_ENV, **options)
    finally:
        for key in ports:
            del os.environ[key]


@contextlib.contextmanager
def _without_unused_head_processes() -> Iterator[None]:
    """While ``ray.init`` starts the local node: no autoscaler monitor (a single machine has
    nothing to scale) and no log monitor (it only streams worker output to drivers, and we
    pass ``log_to_driver=False``): ~50 MB of PSS each (idle total 1,024 -> 928 MiB, three
    alternations) and ~1 core-second of start. ray.init has no options for them; ``ray start``
    has (``--no-monitor``, ``--include-log-monitor=false``), and both end up in the
    ``RayParams`` it builds, which is what this sets. ``tests/integration/test_cli_serve.py``
    fails if a Ray upgrade starts them anyway."""
    from ray._private import parameter

    original = parameter.RayParams

    class LeanParams(original):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("no_monitor", True)
            kwargs.setdefault("include_log_monitor", False)
            super().__init__(*args, **kwargs)

    parameter.RayParams = LeanParams  # type: ignore[misc]
    try:
        yield
    finally:
        parameter.RayParams = original  # type: ignore[misc]


class Service:
    """``start()`` brings everything up and waits until ``/readyz`` answers; ``stop()`` undoes
    exactly what ``start()`` did (an external Redis or Ray cluster is left running)."""

    def __init__(self, settings: Settings, stop: StopFlag | None = None) -> None:
        self.settings = settings
        self.redis: EmbeddedRedis | None = None
        self._started_ray = False
        self._deployed = False
        self._started: list[psutil.Process] = []
        self._ray_core: list[psutil.Process] = []  # of a local Ray we started
        self.stopping = stop or StopFlag()

    def start(self, timeout: float = 120.0, on_step: Callable[[str], Any] | None = None) -> str:
        step = on_step or (lambda _: None)
        running_before = {p.pid for p in psutil.Process().children(recursive=True)}
        configure_ray_environment()  # before Ray (and Serve's constants) are imported
        settings = self.settings
        import ray

        # Said now rather than as HAProxy's bind alert after Ray's ~15 s start. Not when Ray
        # already runs here: its Serve (stopping, or restarting the app) may hold the port.
        if (not settings.ray_address and not ray.is_initialized()
                and not port_is_free(settings.port, settings.host)):
            holder = _listener(settings.port)
            raise RuntimeError(
                f"port {settings.port} on {settings.host} is in use"
                + (f" by {holder}" if holder else "")
                + " (another raybandit, or the HAProxy of one that was killed? choose another "
                  "port with --port or RAYBANDIT_PORT)")
        if not settings.redis_url:
            step(f"starting embedded Redis (data in {settings.data_dir})")
            self.redis = EmbeddedRedis(settings.data_dir / "redis").start()
            settings = self.settings = settings.model_copy(update={"redis_url": self.redis.url})
        else:
            for warning in durability_warnings(settings.redis_url):
                step(f"warning: the Redis at REDIS_URL: {warning}")
        prepare_worker()  # this process imports Serve too
        from ray import serve as ray_serve

        from serve.app import build_app

        if not ray.is_initialized():
            step("starting Ray" + (f" (cluster {settings.ray_address})"
                                   if settings.ray_address else " (local)"))
            self._started_ray = True  # before init: a signal may interrupt it half-way
            init_ray(settings.ray_address, include_dashboard=settings.ray_dashboard)
            _catch_signals(self.stopping)  # ray.init replaced them with its own
        step(f"starting the Serve app on {settings.url}")
        deadline = time.monotonic() + timeout

        def start_serve() -> None:
            ray_serve.start(http_options={"host": settings.host, "port": settings.port},
                            logging_config={"enable_access_log": False, "log_level": "WARNING"})
            ray_serve.run(build_app(settings.model_dump(mode="json")), name=APP_NAME,
                          route_prefix="/", blocking=False)

        try:
            _run_in_thread(start_serve, deadline, self.stopping)
        except TimeoutError:
            raise RuntimeError(
                "Ray Serve did not start the app in time; Ray's logs say why (often its "
                "workers failing to start or to import raybandit): "
                "/tmp/ray/session_latest/logs") from None
        self._deployed = True
        self._wait_ready(deadline)
        if self._started_ray:
            # What this start left running on its own Ray (Ray's processes, HAProxy, Redis):
            # stop() ends any of them that Ray's shutdown missed. Not on a Ray that was there
            # before: its processes are not ours to end.
            self._started = [p for p in psutil.Process().children(recursive=True)
                             if p.pid not in running_before]
            self._ray_core = [p for p in self._started if _name(p) in ("gcs_server", "raylet")]
        return settings.url

    def _wait_ready(self, deadline: float) -> None:
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
        raise RuntimeError(f"the service did not become ready in time ({url})")

    def stop(self) -> None:
        import ray
        from ray import serve as ray_serve

        def delete_app() -> None:
            ray_serve.delete(APP_NAME)  # replicas run __del__: the learner checkpoints
            # On our own Ray, ray.shutdown() below ends Serve's controller and proxies too;
            # Serve's shutdown only added a "graceful_shutdown failed ... will be retried"
            # from Ray on every stop (its controller kills itself during that call).
            if not self._started_ray:
                ray_serve.shutdown()

        # An app that never finished deploying on our own Ray has nothing to save, and Serve
        # may never answer (its controller never started): Ray's shutdown ends it all.
        # Neither can a Ray whose GCS is gone: a SIGTERM sent to the whole process group
        # (`kill -TERM -<pgid>`, `timeout`, systemd's default KillMode) stops Ray's own
        # processes with ours, and Serve's shutdown would wait for them in vain.
        if ray.is_initialized() and (self._deployed or not self._started_ray):
            try:
                _run_in_thread(delete_app, time.monotonic() + STOP_SERVE_SECONDS,
                               give_up=self._ray_stopped_from_outside)
            except RayStopped:
                log.warning("Ray's processes were stopped from outside (a signal to the whole "
                            "process group?); stopping what is left")
            except Exception as exc:  # keep going: Ray and Redis must still be stopped
                log.warning("serve shutdown: %r", exc)
        self._deployed = False
        if self._started_ray:
            ray.shutdown()  # also reaps a node whose ray.init was interrupted
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self._started:
            # e.g. the HAProxy of a Serve that could not stop it, also one the start did not
            # record (HAProxy can reload into a new process; the port was free when this
            # start began, so a listener there is ours)
            _end(self._started + _listeners(self.settings.port, "haproxy"))
        self._started = []

    def _ray_stopped_from_outside(self) -> bool:
        return any(not process_running(process) for process in self._ray_core)


STOP_SERVE_SECONDS = 60.0


class RayStopped(RuntimeError):
    """The local Ray's GCS or raylet is gone."""


def _listener(port: int) -> str | None:
    """Which process listens on ``port``, when this user may know: "haproxy (pid 12)"."""
    holders = _listeners(port)
    return f"{_name(holders[0])} (pid {holders[0].pid})" if holders else None


def _listeners(port: int, name: str | None = None) -> list[psutil.Process]:
    """The processes (named ``name``, if given) listening on ``port``, that this user sees."""
    found = []
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                process = psutil.Process(conn.pid)
                if name is None or _name(process) == name:
                    found.append(process)
    except psutil.Error:
        pass
    return found


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


def _end(processes: list[psutil.Process], grace: float = 5.0) -> None:
    """Terminate those of ``processes`` still running (``process_running``), killing any
    that outlive ``grace``."""
    alive = [p for p in processes if process_running(p)]
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, stubborn = psutil.wait_procs(alive, timeout=grace)
    for process in stubborn:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _run_in_thread(work: Callable[[], None], deadline: float,
                   stop: StopFlag | None = None,
                   give_up: Callable[[], bool] | None = None) -> None:
    """Run ``work`` in a thread and wait for it, giving up (``TimeoutError``) at
    ``deadline``, (``KeyboardInterrupt``) when ``stop`` is set or (``RayStopped``) when
    ``give_up()`` says so. For Serve's start and delete, which wait on Ray without a
    timeout: when Ray's workers could not import raybandit, every worker died at start, the
    controller never came up and the service hung, deaf to Ctrl-C."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="raybandit-serve-call", daemon=True)
    thread.start()
    while thread.is_alive():
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt("stopped while starting")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{getattr(work, '__name__', 'work')} did not finish in time")
        if give_up is not None and give_up():
            raise RayStopped(f"{getattr(work, '__name__', 'work')} abandoned: Ray is gone")
        thread.join(0.1)
    if failure:
        raise failure[0]


class StopFlag:
    """Set by a signal handler, polled by the main thread. Not a ``threading.Event``: its
    ``set()`` takes a lock that the main thread holds inside ``Event.wait``, and a handler
    runs on the main thread, so a signal arriving at that moment deadlocked the process
    (seen: Ctrl-C ignored, three handlers stuck in ``Event.set``)."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True  # one store, no lock: safe in a signal handler

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._set and time.monotonic() < deadline:
            time.sleep(min(0.1, timeout))
        return self._set


def _catch_signals(stop: StopFlag) -> None:
    def _signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _signal)


def serve_forever(settings: Settings, on_step: Callable[[str], Any]) -> None:
    """Start, print the URL, block until Ctrl-C or SIGTERM, then stop everything (also when
    the signal comes while it is still starting)."""
    stop = StopFlag()
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
