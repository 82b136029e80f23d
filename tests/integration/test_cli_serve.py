"""`raybandit serve` as a user runs it: embedded Redis and local Ray from one command,
a URL printed, Ctrl-C/SIGTERM stops everything; the data survives for the next start and
for `export-log`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from serve.redis_server import EmbeddedRedis, free_port, port_is_free


def start(data_dir: Path, port: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "raybandit.cli", "serve", "--data-dir", str(data_dir),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "RAYBANDIT_REWARD_WAIT_SECONDS": "1", **env},
    )


def wait_ready(process: subprocess.Popen, timeout: float = 180) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if "ready: http://" in line:
            return lines
    process.kill()
    raise AssertionError("".join(lines))


def stop(process: subprocess.Popen, sig: int) -> str:
    process.send_signal(sig)
    out, _ = process.communicate(timeout=120)
    return out


def refused(process: subprocess.Popen) -> str:
    """The output of a start that must fail at once (stopped if it starts after all)."""
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        out = stop(process, signal.SIGTERM)
        raise AssertionError(f"it started: {out}") from None
    assert process.returncode == 1, out
    return " ".join(out.split())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_serve_command_starts_persists_and_stops_cleanly(tmp_path) -> None:
    data, port = tmp_path / "data", free_port()
    with another_service_on(FALLBACK_PROXY_DEFAULT_PORT):
        process = start(data, port)
        lines = wait_ready(process)
        url = f"http://127.0.0.1:{port}"
        try:
            assert_no_port_shared_with_another_process(process.pid)
        except BaseException:
            stop(process, signal.SIGTERM)
            raise
    try:
        assert any(url in line for line in lines)
        redis_pid = json.loads((data / "redis" / "redis.json").read_text())["pid"]
        assert_exposed_on_the_configured_host_only(process.pid, port)
        assert_no_unused_ray_head_processes(process.pid)
        # HAProxy binds with SO_REUSEPORT (two of them on one port both listen): without the
        # check, a second service's HAProxy could share this one's port.
        out = refused(start(tmp_path / "second", port))
        assert f"port {port} on 127.0.0.1 is in use" in out
        # nor its data folder (two Redis servers appending to one AOF would corrupt it)
        out = refused(start(data, free_port()))
        assert "is in use by another raybandit process" in out, out
        actions = [{"id": "a", "features": {"t": 1}}, {"id": "b", "features": {"t": 2}}]
        for i in range(5):
            r = httpx.post(f"{url}/v1/rank", json={"context": {"u": i}, "actions": actions}
                           ).json()
            assert httpx.post(f"{url}/v1/reward",
                              json={"event_id": r["event_id"], "reward": 1}).status_code == 202
    except BaseException:
        stop(process, signal.SIGTERM)  # a failed check must not leave the service running
        raise
    out = stop(process, signal.SIGTERM)
    assert process.returncode == 0, out
    assert "stopped" in out
    assert not pid_alive(redis_pid), "the embedded Redis was left running"

    # the decision log outlives the service: export it with nothing running
    log = tmp_path / "log.jsonl"
    done = subprocess.run([sys.executable, "-m", "raybandit.cli", "export-log", str(log),
                           "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(log.read_text().splitlines()) == 5

    # a second start resumes (the stats carry on), this time with API keys required
    key = "s3cret-key-for-tests"
    process = start(data, port, RAYBANDIT_API_KEYS=json.dumps([key]))
    try:
        wait_ready(process)
        assert httpx.get(f"{url}/v1/stats").status_code == 401
        assert httpx.get(f"{url}/v1/stats", headers={"Authorization": "Bearer nope"}
                         ).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        stats = httpx.get(f"{url}/v1/stats", headers=auth).json()["policies"][0]
        assert stats["decisions"] == 5 and stats["learned"] == 5 and stats["model_version"] == 5
        assert_admin_backup_reset_restore(url, auth)
        rank = {"context": {"user": "u1"}, "actions": [{"id": "a"}, {"id": "b"}]}
        denied = httpx.post(f"{url}/v1/rank", json=rank)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert httpx.post(f"{url}/v1/rank", json=rank, headers=auth).status_code == 200
    finally:
        out = stop(process, signal.SIGINT)
    assert process.returncode == 0, out
    done = subprocess.run([sys.executable, "-m", "raybandit.cli", "export-log", str(log),
                           "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and key not in log.read_text()  # no credentials in the log


def assert_exposed_on_the_configured_host_only(pid: int, port: int) -> None:
    """HAProxy (the API port and its stats and metrics frontends) and Redis listen on the
    configured host (127.0.0.1) only; Ray's own gRPC ports are Ray's (see the README)."""
    root = psutil.Process(pid)
    listening: dict[str, list] = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.setdefault(process.name(), []).append(conn.laddr)
        except psutil.Error:
            continue
    assert any(a.port == port for a in listening.get("haproxy", [])), listening
    for name in ("haproxy", "redis-server"):
        addresses = listening.get(name, [])
        assert addresses and all(a.ip == "127.0.0.1" for a in addresses), listening


FALLBACK_PROXY_DEFAULT_PORT = 8500  # Ray Serve's, for the proxy behind HAProxy


@contextlib.contextmanager
def another_service_on(port: int) -> Iterator[None]:
    """A listener on ``port`` as another service's Ray Serve would hold it (SO_REUSEPORT,
    which lets the next one bind it too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):  # held already, by something that shares nothing
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def assert_no_port_shared_with_another_process(pid: int) -> None:
    """No port the service listens on is also listened on by a process outside it: with
    SO_REUSEPORT the kernel would split connections between them (HAProxy's fallback
    requests reached another service's Ray Serve)."""
    service = {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    deadline = time.monotonic() + 30
    while True:  # the fallback proxy may still be starting when the service is ready
        ours, others = [], []
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.pid is not None:
                (ours if conn.pid in service else others).append((conn.pid, conn.laddr))
        names = {psutil.Process(owner).name() for owner, _ in ours}
        if any("ProxyActor" in name for name in names) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any("ProxyActor" in name for name in names), names

    def overlap(a: Any, b: Any) -> bool:
        anywhere = {"0.0.0.0", "::"}
        return a.port == b.port and (a.ip == b.ip or {a.ip, b.ip} & anywhere != set())

    shared = [(mine, owner, theirs) for _, mine in ours for owner, theirs in others
              if overlap(mine, theirs)]
    assert not shared, shared


def assert_no_unused_ray_head_processes(pid: int) -> None:
    """ray.init would start an autoscaler monitor and a log monitor (~50 MB each) that a
    single-machine service with ``log_to_driver=False`` never uses (serve/runtime.py)."""
    commands = []
    for process in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            commands.append(" ".join(process.cmdline()))
    assert any("gcs_server" in c for c in commands) and any("raylet" in c for c in commands)
    unused = [c for c in commands if "autoscaler/_private/monitor.py" in c or "log_monitor.py" in c]
    assert not unused, unused


def assert_admin_backup_reset_restore(url: str, auth: dict) -> None:
    probe = {"context": {"u": 1}, "actions": [{"id": "a", "features": {"t": 1}},
                                               {"id": "b", "features": {"t": 2}}]}

    def rank(event_id: str) -> dict:
        return httpx.post(f"{url}/v1/rank", json={**probe, "event_id": event_id},
                          headers=auth).json()

    def version_is(expected: int) -> bool:
        return rank(f"v-{time.monotonic()}")["model_version"] == expected

    assert httpx.get(f"{url}/v1/admin/model").status_code == 401
    backup = httpx.get(f"{url}/v1/admin/model", headers=auth)
    assert backup.status_code == 200 and backup.content.startswith(b"raybandit-policy/1")
    def pmf(answer: dict) -> dict:
        return {item["id"]: item["probability"] for item in answer["ranking"]}

    before = pmf(rank("p1"))
    assert httpx.post(f"{url}/v1/admin/reset", headers=auth).json()["model_version"] == 0
    wait(lambda: version_is(0))
    bad = httpx.put(f"{url}/v1/admin/model", content=b"not a model", headers=auth)
    assert bad.status_code == 422
    restored = httpx.put(f"{url}/v1/admin/model", content=backup.content, headers=auth)
    assert restored.status_code == 200 and restored.json()["model_version"] == 5
    wait(lambda: version_is(5))
    assert pmf(rank("p2")) == before  # the restored model ranks exactly as the backed-up one


def wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


SIGNAL_STORM = """
import signal
from serve.runtime import StopFlag
flag, hits = StopFlag(), 0
def handler(signum, frame):
    global hits
    hits += 1
    flag.set()  # from the handler, on the main thread, wherever it was inside flag.wait()
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
try:
    for _ in range(30000):
        flag._set = False
        flag.wait(0.0001)
finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
print(hits)
"""


def test_sigterm_to_the_whole_process_group_still_stops_cleanly(tmp_path) -> None:
    """systemd's default KillMode, `timeout` and `kill -TERM -<pgid>` signal Ray's own
    processes too: Serve cannot be asked to stop any more, but what is left still is, the
    command exits 0, and the port and the data folder are free, the data intact."""
    data, port = tmp_path / "data", free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "raybandit.cli", "serve", "--data-dir", str(data),
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        process_group=0)  # as a shell or systemd starts it
    started: list[psutil.Process] = []
    try:
        wait_ready(process)
        started = psutil.Process(process.pid).children(recursive=True)
        url = f"http://127.0.0.1:{port}"
        rank = {"context": {"u": 1}, "actions": [{"id": "a"}, {"id": "b"}]}
        event = httpx.post(f"{url}/v1/rank", json=rank).json()["event_id"]
        assert httpx.post(f"{url}/v1/reward", json={"event_id": event, "reward": 1}
                          ).status_code == 202
        os.killpg(process.pid, signal.SIGTERM)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out
        assert "stopped from outside" in out and "stopped" in out.splitlines()[-1], out
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, left
        assert port_is_free(port)
        log = tmp_path / "log.jsonl"
        done = subprocess.run([sys.executable, "-m", "raybandit.cli", "export-log", str(log),
                               "--data-dir", str(data)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr  # the folder is free, its data readable
        assert [json.loads(line)["event_id"] for line in log.read_text().splitlines()] == [
            event]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for leftover in started:
            with contextlib.suppress(psutil.Error):
                leftover.kill()


def test_stop_signals_cannot_deadlock_the_main_thread() -> None:
    """`raybandit serve` once ignored Ctrl-C: the handler's threading.Event.set() waited for a
    lock the main thread held inside Event.wait(). A signal every 0.2 ms against 30,000 short
    waits: with threading.Event in place of StopFlag this subprocess hangs (tried), which
    fails here on the timeout."""
    done = subprocess.run([sys.executable, "-c", SIGNAL_STORM], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 1000


def test_free_ports_come_from_outside_the_kernels_ephemeral_range() -> None:
    # The kernel (and so Ray's own connections and servers) can hand an ephemeral port to
    # someone else between our pick and HAProxy's or Redis's bind.
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for port in {free_port() for _ in range(20)}:
        assert not low <= port <= high and not 10002 <= port <= 19999
        assert port_is_free(port)


def test_a_port_is_free_once_its_server_stopped_even_with_connections_in_time_wait() -> None:
    """A server that closes its connections first leaves them in TIME_WAIT on its port; a
    new server (HAProxy, Redis: SO_REUSEADDR) can listen there at once, so `serve` must not
    call the port taken."""
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end waits in TIME_WAIT
            client.recv(1)
        assert not port_is_free(port)  # still listening
    waiting = [c for c in psutil.net_connections(kind="tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_TIME_WAIT]
    assert waiting, "no connection left in TIME_WAIT: the test set-up failed"
    assert port_is_free(port)


def test_a_port_in_use_is_a_clear_error_before_anything_starts(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        process = start(tmp_path / "data", port)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 1, out
    holder = psutil.Process()  # the process that listens there, named for the user
    assert (f"error: port {port} on 127.0.0.1 is in use by {holder.name()} (pid {holder.pid})"
            in " ".join(out.split())), out
    assert "starting Ray" not in out and not (tmp_path / "data" / "redis").exists()


def test_ctrl_c_stops_a_service_whose_ray_workers_cannot_start(tmp_path) -> None:
    """Seen: with an editable install pointing at a deleted checkout, Ray's workers could not
    import raybandit, every worker died at start, Serve's controller never came up, and
    `raybandit serve` hung forever, deaf to Ctrl-C. Here a `serve` package that fails to
    import comes first on the workers' path (the command itself imports the real one from
    its working directory); Ctrl-C must still stop everything it started."""
    broken = tmp_path / "broken" / "serve"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('raybandit is not importable')\n")
    process = start(tmp_path / "data", free_port(), PYTHONPATH=str(broken.parent))
    started: list[psutil.Process] = []
    try:
        assert process.stdout is not None
        lines = []
        while not any("starting the Serve app" in line for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        started = psutil.Process(process.pid).children(recursive=True)
        assert any("raylet" in p.name() for p in started)
        time.sleep(5)  # workers keep dying; the app cannot come up
        out = stop(process, signal.SIGINT)
    finally:
        if process.poll() is None:  # hung: leave nothing behind for the rest of the suite
            for p in [psutil.Process(process.pid), *started]:
                with contextlib.suppress(psutil.Error):
                    p.kill()
    assert "raybandit stopped" in out
    assert process.returncode == 0
    wait(lambda: not any(pid_alive(p.pid) for p in started), timeout=30)


def test_an_external_redis_that_could_lose_rewards_is_warned_about(tmp_path) -> None:
    with EmbeddedRedis(tmp_path / "external") as external:
        redis.Redis.from_url(external.url).config_set("appendonly", "no")
        process = start(tmp_path / "data", free_port(), REDIS_URL=external.url)
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not any("starting Ray" in line for line in lines):
                line = process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
        finally:
            out = stop(process, signal.SIGINT)
    assert "warning: the Redis at REDIS_URL: appendonly is off" in " ".join(
        "".join(lines).split()), lines
    assert process.returncode == 0, out


SERVE_WITHOUT_PANDAS_AND_ARROW = """
import sys
from serve.ray_hooks import prepare_worker
prepare_worker()
import serve.ingress  # imports Ray Serve and builds the deployment, as a replica does
from ray.serve._private import utils
assert utils.pd is None, "Serve's utils loaded pandas"
assert "pandas" not in sys.modules and "pyarrow" not in sys.modules
import pandas, pyarrow  # still importable for whoever needs them (River, MLflow, export)
print(pandas.DataFrame({"a": [1]}).shape, pyarrow.table({"a": [1]}).num_rows)
"""


def test_serve_processes_leave_pandas_and_arrow_unloaded_but_importable() -> None:
    """Every Serve process (and `raybandit serve`) paid ~0.45 s and ~40 MB for pandas and
    ~28 MB for pyarrow, which Ray Serve loads only to encode DataFrames and to serialize Ray
    Data's Arrow objects; the worker hook skips both there (without it, importing the
    ingress loads both)."""
    done = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_PANDAS_AND_ARROW],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 1) 1"
