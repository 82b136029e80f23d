"""``/v1/stats`` from the running sums kept in Redis: per-arm mean reward with a 95%
interval, the Welch difference to the control arm, and apprentice mode's comparison."""

from __future__ import annotations

import math
from typing import Any

from serve.schemas import ApprenticeStats, ItemCount, PolicyStats, StatsResponse


def _mean_ci(counters: dict[str, float]) -> tuple[int, float | None, float | None,
                                                    tuple[float, float] | None]:
    """(n, mean, variance, 95% interval) of the final rewards counted in ``counters``."""
    n = int(counters.get("learned", 0))
    if not n:
        return 0, None, None, None
    mean = counters.get("reward_sum", 0.0) / n
    if n < 2:
        return n, mean, None, None
    var = max(counters.get("reward_sq", 0.0) / n - mean * mean, 0.0) * n / (n - 1)
    half = 1.96 * math.sqrt(var / n)
    return n, mean, var, (mean - half, mean + half)


def _arm_stats(spec: str, counters: dict[str, float], published: int, serving: int,
               pending: int) -> PolicyStats:
    n, mean, _, ci = _mean_ci(counters)
    return PolicyStats(
        policy=spec, decisions=int(counters.get("decisions", 0)),
        rewards=int(counters.get("rewards", 0)), learned=n, mean_reward=mean,
        mean_reward_ci=ci, learner_updates=published, model_version=serving,
        pending_decisions=pending,
    )


def _difference(arm: dict[str, float], control: dict[str, float]
                ) -> tuple[float | None, tuple[float, float] | None]:
    """Arm minus control mean reward, with a Welch 95% interval."""
    n1, m1, v1, _ = _mean_ci(arm)
    n2, m2, v2, _ = _mean_ci(control)
    if m1 is None or m2 is None or v1 is None or v2 is None:
        return None, None
    diff = m1 - m2
    half = 1.96 * math.sqrt(v1 / n1 + v2 / n2)
    return diff, (diff - half, diff + half)


def stats_response(raw: dict[str, Any], control: str, versions: dict[str, int],
                   modes: dict[str, Any]) -> StatsResponse:
    """The answer of ``/v1/stats`` from ``Store.stats``; ``versions`` are the model versions
    this replica serves and ``modes`` each arm's mode (live, apprentice, logging-only)."""
    rows = {}
    for spec, (counters, published, apprentice) in raw["policies"].items():
        rows[spec] = _arm_stats(spec, counters, published, versions[spec], raw["pending"])
        rows[spec].mode = modes[spec]
        if apprentice is not None and modes[spec] != "logging-only":
            rows[spec].apprentice = ApprenticeStats.model_validate(apprentice)
    for spec, row in rows.items():
        if spec != control:
            row.difference_to_control, row.difference_ci = _difference(
                raw["policies"][spec][0], raw["policies"][control][0])
    return StatsResponse(
        policies=list(rows.values()),
        control=control,
        top_clicked=[ItemCount(id=i, count=c) for i, c in raw["clicks"]],
        top_viewed=[ItemCount(id=i, count=c) for i, c in raw["views"]],
        log_length=raw["log_length"],
    )
