"""Serving benchmark: bounded loopback load against `raybandit serve`, and the same rank load
against a plain single-process FastAPI + VW app, in the same run.

    python -m benchmarks.serve [--seconds S] [--concurrency 1 8 32] [--rounds R] [--replicas N]

Reports, as JSON: startup to ready and memory (PSS of every process of the service), rank
requests/s with p50/p99 latency and server CPU ms per request at each concurrency, reward
throughput with reward-to-model freshness (time from a 202 to a published model version that
includes it), one at a time and batched (/v1/events), batch-rank decisions/s, and the plain
app's rank figures with the ratio. The rank loads on the service and on the plain app take
turns (``--rounds`` times at each concurrency), so the ratio compares minutes of the same
machine. Rank, rank-then-reward and batch-rank load come from `wrk`
when it is installed (as the issue measured; `apt-get install wrk`; the client then costs the
2 shared cores little: the httpx client took ~4 ms of CPU per rank+reward pair, as much as the
service), else from an asyncio httpx client in this process; batched rewards (/v1/events)
always use httpx. All load shares the 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from benchmarks.common import emit, machine
from serve.redis_server import free_port

N_ACTIONS, N_ACTION_FEATURES, N_CONTEXT = 10, 4, 20


def rank_body(rng: random.Random) -> dict[str, Any]:
    return {
        "context": {f"x{i}": round(rng.uniform(-1, 1), 3) for i in range(N_CONTEXT - 2)}
        | {"segment": rng.choice("abcd"), "device": rng.choice(["ios", "web"])},
        "actions": [{"id": f"item{k}", "features": {f"f{j}": (k * 7 + j) % 5 / 5
                                                    for j in range(N_ACTION_FEATURES)}}
                    for k in range(N_ACTIONS)],
    }


def tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def pss_mb(processes: list[psutil.Process]) -> float:
    total = 0
    for p in processes:
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().pss
    return total / 2**20


async def load(url: str, path: str, make_body, seconds: float, concurrency: int,
               after=None, until=None, rate: float | None = None) -> dict[str, Any]:
    """Closed-loop load from ``concurrency`` clients; with ``rate``, requests are started
    on a fixed schedule of ``rate`` per second instead of as fast as answers come back."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    next_start = [time.perf_counter()]

    async def worker(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.perf_counter() < stop_at and not (until and until()):
                if rate:
                    slot, next_start[0] = next_start[0], next_start[0] + 1 / rate
                    await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                start = time.perf_counter()
                response = await client.post(path, json=make_body(rng))
                latencies.append(time.perf_counter() - start)
                if response.status_code >= 300:
                    errors += 1
                elif after is not None:
                    await after(client, response)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "concurrency": concurrency, "requests": len(latencies), "errors": errors,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
    }


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def batch_body(rng: random.Random) -> dict[str, Any]:
    return {"requests": [rank_body(rng) for _ in range(100)]}


def wrk_rank(url: str, path: str, seconds: float, concurrency: int,
             make_body=rank_body) -> dict[str, Any]:
    """The same fixed body at ``concurrency`` open connections, one wrk thread (the bodies
    carry no event id: every call is new decisions)."""
    return _wrk(_WRK_SCRIPT % json.dumps(make_body(random.Random(0))), f"{url}{path}",
                seconds, concurrency)


def _wrk(script_text: str, url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Run wrk (one thread, ``concurrency`` connections) with a Lua script whose ``done``
    prints the JSON line our scripts print."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    try:
        done = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout",
             "10s", "-s", script.name, url],
            capture_output=True, text=True, check=True)
    finally:
        os.unlink(script.name)
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    elapsed = stats["duration_us"] / 1e6
    result = {
        "concurrency": concurrency, "requests": stats["requests"], "errors": stats["errors"],
        "requests_per_second": round(stats["requests"] / elapsed, 1),
        "p50_ms": round(stats["p50_us"] / 1000, 2), "p99_ms": round(stats["p99_us"] / 1000, 2),
        "load_generator": "wrk",
    }
    if "rewards" in stats:  # the rank-then-reward script counts the rewards it sent
        result["rewards_per_second"] = round(stats["rewards"] / elapsed, 1)
    return result


_WRK_PAIRS_SCRIPT = """
-- each rank answer queues its event id; the next request rewards it, else ranks anew
local headers = {["Content-Type"] = "application/json"}
local rank = [==[%s]==]
local waiting, threads = {}, {}
rewards = 0  -- a global: done() reads it from each thread
function setup(thread) table.insert(threads, thread) end
function request()
  local event_id = table.remove(waiting)
  if event_id then
    rewards = rewards + 1
    return wrk.format("POST", "/v1/reward", headers,
                      '{"event_id": "' .. event_id .. '", "reward": 1.0}')
  end
  return wrk.format("POST", "/v1/rank", headers, rank)
end
function response(status, headers, body)
  if status == 200 then
    local event_id = body:match('"event_id":"([^"]+)"')
    if event_id then table.insert(waiting, event_id) end
  end
end
function done(summary, latency, requests)
  local e, sent = summary.errors, 0
  for _, thread in ipairs(threads) do sent = sent + thread:get("rewards") end
  io.write(string.format(
    '{"requests": %%d, "rewards": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, '
    .. '"p99_us": %%d}\\n', summary.requests, sent, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_pairs(url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Rank, then reward what was ranked (reward 1.0), at ``concurrency`` connections: the
    learning loop's own traffic. Latencies mix both kinds of request."""
    return _wrk(_WRK_PAIRS_SCRIPT % json.dumps(rank_body(random.Random(0))), url, seconds,
                concurrency)


async def _call(function, *args: Any) -> dict[str, Any]:
    return await asyncio.to_thread(function, *args)


def rank_load(url: str, path: str, seconds: float, concurrency: int, make_body=rank_body):
    """A rank load coroutine: wrk when installed, else httpx."""
    if shutil.which("wrk"):
        return _call(wrk_rank, url, path, seconds, concurrency, make_body)
    return load(url, path, make_body, seconds, concurrency)


def pairs_load(url: str, seconds: float, concurrency: int):
    """A rank-then-reward load coroutine: wrk when installed, else httpx."""
    if shutil.which("wrk"):
        return _call(wrk_pairs, url, seconds, concurrency)

    async def reward(client: httpx.AsyncClient, response: httpx.Response) -> None:
        await client.post("/v1/reward", json={"event_id": response.json()["event_id"],
                                              "reward": 1.0})

    async def pairs() -> dict[str, Any]:
        result = await load(url, "/v1/rank", rank_body, seconds, concurrency, reward)
        # each counted request is a rank followed by its reward
        return {**result, "rewards_per_second": result["requests_per_second"],
                "requests": 2 * result["requests"],
                "requests_per_second": 2 * result["requests_per_second"]}

    return pairs()


def measured(server: list[psutil.Process], coro) -> dict[str, Any]:
    before = cpu_seconds(server)
    result = asyncio.run(coro)
    used = cpu_seconds(server) - before
    result["server_cpu_ms_per_request"] = round(1000 * used / max(result["requests"], 1), 2)
    return result


def alternated_rank(service: tuple[str, list[psutil.Process]],
                    plain: tuple[str, list[psutil.Process]], seconds: float,
                    concurrencies: list[int], rounds: int) -> tuple[list[Any], list[Any]]:
    """Rank load on the service and on the plain app, taking turns ``rounds`` times at each
    concurrency. This machine's speed drifts by up to 2x within an hour: measured one after
    the other, minutes apart, the ratio measured the drift as well."""
    ours, theirs = [], []
    for concurrency in concurrencies:
        runs: dict[str, list[dict[str, Any]]] = {"service": [], "plain": []}
        for _ in range(rounds):
            for name, path, (url, processes) in (("service", "/v1/rank", service),
                                                  ("plain", "/rank", plain)):
                runs[name].append(measured(processes,
                                           rank_load(url, path, seconds, concurrency)))
        ours.append(combined(runs["service"]))
        theirs.append(combined(runs["plain"]))
    return ours, theirs


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from several rounds: throughput and CPU over all of them, the median p50,
    the worst p99; the rounds themselves alongside."""
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["requests"] / r["requests_per_second"] for r in runs
                  if r["requests_per_second"])
    cpu_ms = sum(r["server_cpu_ms_per_request"] * r["requests"] for r in runs)
    return {
        "concurrency": runs[0]["concurrency"], "requests": requests,
        "errors": sum(r["errors"] for r in runs),
        "requests_per_second": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "load_generator": runs[0]["load_generator"],
        "server_cpu_ms_per_request": round(cpu_ms / max(requests, 1), 2),
        "rounds": runs,
    }


def wait_http(url: str, timeout: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def freshness(redis_url: str, policy: str, stop: threading.Event, samples: list) -> None:
    client: Any = redis.Redis.from_url(redis_url)
    while not stop.is_set():
        log_id = client.hget(f"rb:model:{policy}", "log_id")
        samples.append((time.time(), (log_id or b"0-0").decode()))
        time.sleep(0.01)


def freshness_stats(redis_url: str, samples: list, since: float) -> dict[str, Any]:
    client: Any = redis.Redis.from_url(redis_url)
    entries = [e[0].decode() for e in client.xrange("rb:log", min=f"{int(since * 1000)}")]

    def key(entry: str) -> tuple[int, int]:
        a, _, b = entry.partition("-")
        return int(a), int(b)

    delays, i = [], 0
    for entry in entries:
        while i < len(samples) and key(samples[i][1]) < key(entry):
            i += 1
        if i == len(samples):
            break
        delays.append(samples[i][0] - key(entry)[0] / 1000)
    delays.sort()
    if not delays:
        return {"samples": 0}
    return {"samples": len(delays), "p50_ms": round(1000 * statistics.median(delays), 1),
            "p99_ms": round(1000 * delays[int(len(delays) * 0.99)], 1)}


def with_freshness(redis_url: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result with the freshness of the rewards logged meanwhile (sampled until
    2 s after it ends, so the last ones can be published)."""
    samples: list = []
    stop = threading.Event()
    sampler = threading.Thread(target=freshness, args=(redis_url, "vw:squarecb", stop, samples))
    since = time.time()
    sampler.start()
    try:
        result = run()
        time.sleep(2)
    finally:
        stop.set()
        sampler.join()
    return {**result, "freshness": freshness_stats(redis_url, samples, since)}


def batched_rewards(url: str, redis_url: str, server: list[psutil.Process], ranked: list[str],
                    seconds: float, rate: float | None = None) -> dict[str, Any]:
    """Rewards for the waiting decisions in ``ranked`` (taken newest first), 100 per
    /v1/events call from 4 clients (``rate`` calls/s, else as fast as they are answered),
    with reward-to-published-model freshness."""
    accepted = 0

    def events_body(rng: random.Random) -> dict[str, Any]:
        chunk = [ranked.pop() for _ in range(min(100, len(ranked)))]
        return {"events": [{"event_id": e, "reward": 1.0} for e in chunk]}

    async def count(client: httpx.AsyncClient, response: httpx.Response) -> None:
        nonlocal accepted
        accepted += response.json()["accepted"]

    rewards = with_freshness(redis_url, lambda: measured(server, load(
        url, "/v1/events", events_body, seconds, 4, count, until=lambda: not ranked,
        rate=rate)))
    rewards["rewards_accepted"] = accepted
    rewards["rewards_per_second"] = round(
        accepted / max(rewards["requests"], 1) * rewards["requests_per_second"], 1)
    return rewards


def serve_and_measure(out: dict[str, Any], args: argparse.Namespace,
                      plain_side: tuple[str, list[psutil.Process]]) -> None:
    """Start `raybandit serve`, measure it (the rank loads taking turns with the plain app),
    stop it."""
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # long enough for the batched rewards to find their decisions still waiting
        env = {**os.environ, "RAYBANDIT_REWARD_WAIT_SECONDS": "300"}
        if args.replicas is not None:
            env["RAYBANDIT_REPLICAS"] = str(args.replicas)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "raybandit.cli", "serve", "--port",
                                 str(port), "--data-dir", str(Path(folder) / "data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            wait_http(f"{url}/readyz")
            while httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
                time.sleep(0.1)
            out["startup_seconds"] = round(time.perf_counter() - started, 1)
            server = tree(psutil.Process(proc.pid))
            time.sleep(3)
            out["idle_pss_mb"] = round(pss_mb(tree(psutil.Process(proc.pid))), 1)
            out["rank"], out["plain_fastapi_vw_rank"] = alternated_rank(
                (url, server), plain_side, args.seconds, args.concurrency, args.rounds)
            info = json.loads((Path(folder) / "data" / "redis" / "redis.json").read_text())
            redis_url = f"redis://127.0.0.1:{info['port']}/0"
            out["rank_and_reward_c8"] = with_freshness(
                redis_url, lambda: measured(server, pairs_load(url, args.seconds, 8)))

            batch = measured(server, rank_load(url, "/v1/rank/batch", args.seconds, 4,
                                               batch_body))
            batch["decisions_per_second"] = round(batch["requests_per_second"] * 100, 1)
            # every decision still waiting for a reward (rank and batch phases), newest last
            waiting: Any = redis.Redis.from_url(redis_url).zrange("rb:deadlines", 0, -1)
            ranked = [e.decode() for e in waiting]
            out["batch_rank_c4"] = batch

            # rewards for waiting decisions, 100 per /v1/events call: first at the issue's
            # goal rate (2,000/s), then as fast as the service takes them
            out["batched_rewards_2000_per_s"] = batched_rewards(
                url, redis_url, server, ranked, args.seconds, rate=20)
            time.sleep(2)
            out["batched_rewards_c4"] = batched_rewards(url, redis_url, server, ranked,
                                                        args.seconds)
            out["loaded_pss_mb"] = round(pss_mb(tree(psutil.Process(proc.pid))), 1)
        finally:
            proc.terminate()
            proc.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns of the service and the plain app at each concurrency")
    parser.add_argument("--replicas", type=int, default=None,
                        help="ranking replicas (default: the service's own default)")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or min(args.concurrency) < 1:
        parser.error("--rounds and --concurrency must be at least 1, --seconds above 0")
    out: dict[str, Any] = {"benchmark": "serve", "machine": machine(),
                           "replicas": args.replicas,
                           "request": {"actions": N_ACTIONS, "action_features": N_ACTION_FEATURES,
                                       "context_features": N_CONTEXT}}
    # the plain app is up first and idles while the service starts and while it is loaded
    plain_port = free_port()
    plain = subprocess.Popen([sys.executable, "-m", "benchmarks.plain_app", str(plain_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        plain_url = f"http://127.0.0.1:{plain_port}"
        wait_http(f"{plain_url}/docs")
        plain_side = (plain_url, tree(psutil.Process(plain.pid)))
        serve_and_measure(out, args, plain_side)
    finally:
        plain.terminate()
        plain.wait(30)
    out["ratio_rank_rps_vs_plain"] = [
        {"concurrency": ours["concurrency"],
         "ratio": round(ours["requests_per_second"] / base["requests_per_second"], 3),
         "rounds": [round(a["requests_per_second"] / b["requests_per_second"], 3)
                    for a, b in zip(ours["rounds"], base["rounds"], strict=True)]}
        for ours, base in zip(out["rank"], out["plain_fastapi_vw_rank"], strict=True)]
    emit(out)


if __name__ == "__main__":
    main()
