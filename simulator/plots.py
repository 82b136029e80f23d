"""Reward and regret curves of simulation runs, as PNG files (matplotlib, no display)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simulator.runner import SimulationResult


def new_figure(width: float, height: float, ncols: int = 1):
    """A figure on the non-interactive backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height))


def save_figure(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _moving_mean(values: Sequence[float], window: int) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if window <= 1 or len(data) < window:
        return np.cumsum(data) / np.arange(1, len(data) + 1)
    kernel = np.ones(window) / window
    return np.convolve(data, kernel, mode="valid")


def plot_simulation(results: Sequence[SimulationResult], path: str | Path, title: str = "") -> Path:
    """Two panels: moving mean reward and cumulative regret, mean over seeds (band: min-max)."""
    by_policy: dict[str, list[SimulationResult]] = defaultdict(list)
    for result in results:
        by_policy[result.policy].append(result)
    steps = max(r.steps for r in results)
    window = max(1, steps // 40)
    fig, (left, right) = new_figure(12, 4.5, ncols=2)
    for policy, runs in by_policy.items():
        rewards = np.array([_moving_mean(r.rewards, window) for r in runs])
        x = np.arange(rewards.shape[1]) + window
        (line,) = left.plot(x, rewards.mean(axis=0), label=policy)
        left.fill_between(x, rewards.min(axis=0), rewards.max(axis=0), alpha=0.15,
                          color=line.get_color())
        regret = np.array([r.regret_curve for r in runs])
        steps_axis = np.arange(1, regret.shape[1] + 1)
        right.plot(steps_axis, regret.mean(axis=0), label=policy, color=line.get_color())
        right.fill_between(steps_axis, regret.min(axis=0), regret.max(axis=0), alpha=0.15,
                           color=line.get_color())
    optimal = np.mean([np.mean(r.optimal) for r in results])
    left.axhline(optimal, color="grey", linestyle="--", linewidth=1, label="optimal (mean)")
    left.set(xlabel="step", ylabel=f"reward (moving mean, window {window})",
             title="Reward")
    right.set(xlabel="step", ylabel="cumulative regret", title="Regret")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
