"""Replay throughput: `raybandit replay` against raw library loops over the same log.

    python -m benchmarks.replay [--events N]

Writes a uniformly-logged decision log (JSON Lines, the contract format) from the benchmark
stream, then measures events/s of the replay runner (streaming the file, as the CLI does)
for ``vw:epsilon`` and ``river:linucb``, with only IPS and with all five estimators, and of
hand-written loops that read the same file and predict+learn with raw VW / raw River.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from benchmarks.common import emit, machine, reward, stream
from learners.decision_log import write_log
from simulator.logs import read_log
from simulator.runner import replay


def make_log(path: Path, n: int) -> None:
    rng = random.Random(0)
    records = []
    for i, ex in enumerate(stream(n, seed=1)):
        chosen = rng.randrange(len(ex.actions))
        records.append({
            "event_id": f"e{i}", "timestamp": "2026-11-24T00:00:00Z", "context": ex.context,
            "actions": ex.actions, "chosen": ex.actions[chosen]["id"],
            "probability": 1.0 / len(ex.actions), "reward": reward(ex, chosen),
            "policy": "uniform",
        })
    write_log(records, path)


def timed(fn) -> float:
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def ours(path: Path, spec: str, estimators: list[str]) -> float:
    return timed(lambda: replay(read_log(path), [spec], estimators).n_events)


def _text(features: dict) -> str:
    return " ".join(f"{k}={v}" if isinstance(v, str) else f"{k}:{v}" for k, v in features.items())


def raw_vw(path: Path) -> float:
    """json.loads each line, f-string VW text, predict (for the estimate) and learn."""
    from vowpalwabbit import Workspace

    ws = Workspace(cb_explore_adf=True, epsilon=0.05, quiet=True, interactions=["ca", "ci"])

    def run() -> int:
        n = 0
        with open(path) as handle:
            for line in handle:
                d = json.loads(line)
                shared = "shared |c " + _text(d["context"])
                lines = [f"|a {_text(a['features'])} |i id={a['id']}" for a in d["actions"]]
                ids = [a["id"] for a in d["actions"]]
                chosen = ids.index(d["chosen"])
                pmf = ws.predict([shared, *lines])
                _ = pmf[chosen] / d["probability"] * d["reward"]
                lines[chosen] = f"0:{-d['reward']}:{d['probability']} {lines[chosen]}"
                ws.learn([shared, *lines])
                n += 1
        return n

    return timed(run)


def raw_river(path: Path) -> float:
    """River's LinUCBDisjoint over the context, learning the logged arm (no propensities)."""
    from river import bandit

    policy = bandit.LinUCBDisjoint(alpha=1.0, seed=0)

    def run() -> int:
        n = 0
        with open(path) as handle:
            for line in handle:
                d = json.loads(line)
                ctx = {(f"{k}={v}" if isinstance(v, str) else k): (1.0 if isinstance(v, str)
                                                                   else v)
                       for k, v in d["context"].items()}
                policy.pull([a["id"] for a in d["actions"]], context=ctx)
                policy.update(d["chosen"], ctx, d["reward"])
                n += 1
        return n

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="run each loop this often and keep the best (noisy machines)")
    args = parser.parse_args()

    def best(fn, *fn_args: Any) -> float:
        return max(fn(*fn_args) for _ in range(args.repeats))

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.jsonl"
        make_log(path, args.events)
        raw = {"raw_vw_loop": best(raw_vw, path),
               "raw_river_linucb_disjoint": best(raw_river, path)}
        results = []
        for spec, baseline in (("vw:epsilon", "raw_vw_loop"),
                               ("river:linucb?mode=disjoint", "raw_river_linucb_disjoint"),
                               ("river:linucb", "raw_river_linucb_disjoint")):
            for estimators in (["ips"], ["replay", "ips", "snips", "dm", "dr"]):
                eps = best(ours, path, spec, estimators)
                results.append({"policy": spec, "estimators": estimators,
                                "events_per_second": round(eps, 1), "baseline": baseline,
                                "ratio": round(eps / raw[baseline], 3)})
    emit({"benchmark": "replay", "events": args.events, "machine": machine(),
          "baselines_events_per_second": {k: round(v, 1) for k, v in raw.items()},
          "results": results})


if __name__ == "__main__":
    main()
