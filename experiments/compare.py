"""Comparing the runs of an experiment read back from MLflow: a table and a plot.

For simulations, each policy's mean reward over seeds with a 95% interval, and the
difference to the baseline paired by seed (same contexts, same reward draws). For replays,
each policy's estimate per estimator with its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import tracking
from simulator.plots import new_figure, save_figure
from simulator.runner import seed_interval


@dataclass
class Row:
    policy: str
    mean: float
    ci: tuple[float, float]
    difference: float | None
    difference_ci: tuple[float, float] | None
    n: int


@dataclass
class Comparison:
    experiment: str
    run_id: str
    kind: str
    baseline: str
    rows: list[Row]
    replay: list[dict[str, Any]]


def latest_experiment_name(api: Any) -> str:
    runs = api.search_runs(
        [e.experiment_id for e in api.search_experiments()],
        filter_string="tags.`raybandit.role` = 'parent'", order_by=["attributes.start_time DESC"],
        max_results=1)
    if not runs:
        raise LookupError("no raybandit experiment has been run in this tracking store")
    return str(runs[0].data.tags["raybandit.experiment"])


def compare(name: str | None = None) -> Comparison:
    api = tracking.client()
    name = name or latest_experiment_name(api)
    experiment = api.get_experiment_by_name(name)
    if experiment is None:
        raise LookupError(f"no experiment named {name!r} in {tracking.tracking_uri()}")
    parents = api.search_runs([experiment.experiment_id],
                              filter_string="tags.`raybandit.role` = 'parent' and "
                                            "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise LookupError(f"experiment {name!r} has no finished run")
    parent = parents[0]
    children = api.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=5000)
    baseline = parent.data.params["baseline"]
    policies = parent.data.params["policies"].split(",")
    kind = parent.data.tags["raybandit.kind"]
    if kind == "replay":
        estimates = sorted(
            ({"policy": c.data.tags["raybandit.policy"], **c.data.metrics} for c in children),
            key=lambda row: policies.index(row["policy"]) if row["policy"] in policies else 0)
        return Comparison(name, parent.info.run_id, kind, baseline, [], estimates)
    by_seed: dict[str, dict[str, float]] = {}
    for child in children:
        tags = child.data.tags
        by_seed.setdefault(tags["raybandit.policy"], {})[tags["raybandit.seed"]] = \
            child.data.metrics["mean_reward"]
    rows: list[Row] = []
    for policy in policies:
        seeds = by_seed.get(policy, {})
        mean, ci = seed_interval(list(seeds.values()))
        diff = diff_ci = None
        if policy != baseline:
            base = by_seed.get(baseline, {})
            paired = [seeds[s] - base[s] for s in seeds if s in base]
            if paired:
                diff, diff_ci = seed_interval(paired)
        rows.append(Row(policy, mean, ci, diff, diff_ci, len(seeds)))
    return Comparison(name, parent.info.run_id, kind, baseline, rows, [])


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    rows = comparison.rows
    fig, ax = new_figure(max(6, 1.4 * len(rows)), 4)
    means = [r.mean for r in rows]
    errors = [[0 if math.isnan(r.ci[0]) else r.mean - r.ci[0] for r in rows],
              [0 if math.isnan(r.ci[1]) else r.ci[1] - r.mean for r in rows]]
    colors = ["grey" if r.policy == comparison.baseline else "tab:blue" for r in rows]
    ax.bar(range(len(rows)), means, yerr=errors, capsize=6, color=colors)
    ax.set_xticks(range(len(rows)), [r.policy for r in rows], rotation=20, ha="right")
    ax.set_ylabel("mean reward (95% CI over seeds)")
    ax.set_title(f"{comparison.experiment} (baseline in grey)")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
