"""Shared pieces of the benchmarks: a fixed synthetic stream and JSON output."""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

N_ACTIONS = 10
N_CONTEXT = 20
N_ACTION_FEATURES = 5


@dataclass(frozen=True)
class Example:
    context: dict[str, Any]
    actions: list[dict[str, Any]]
    best: int


def stream(n: int, seed: int = 0) -> list[Example]:
    """``n`` decisions: 20 numeric/categorical context features, 10 actions with 5 features,
    and a hidden linear preference that decides which action is best."""
    rng = random.Random(seed)
    actions = [
        {
            "id": f"item{i}",
            "features": {
                "topic": f"t{i % 4}",
                **{f"f{j}": round(rng.uniform(-1, 1), 3) for j in range(N_ACTION_FEATURES - 1)},
            },
        }
        for i in range(N_ACTIONS)
    ]
    weights = [rng.uniform(-1, 1) for _ in range(N_CONTEXT)]
    out = []
    for _ in range(n):
        numeric = {f"x{k}": round(rng.uniform(-1, 1), 3) for k in range(N_CONTEXT - 2)}
        context = {"segment": rng.choice("abcd"), "device": rng.choice(["ios", "web"]), **numeric}
        # the best action depends on the context through a hidden linear score
        score = sum(w * v for w, v in zip(weights, numeric.values(), strict=False))
        out.append(Example(context, actions, int(abs(score) * 7) % N_ACTIONS))
    return out


def reward(example: Example, chosen_index: int) -> float:
    return 1.0 if chosen_index == example.best else 0.0


def rate(fn: Callable[[], int], min_seconds: float = 1.0) -> float:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    start = time.perf_counter()
    done = fn()
    elapsed = time.perf_counter() - start
    while elapsed < min_seconds:
        done += fn()
        elapsed = time.perf_counter() - start
    return done / elapsed


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2))


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
