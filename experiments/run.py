"""Running an experiment definition through the simulator and recording it in MLflow.

One parent run per experiment run; one child run per (policy, seed) for simulations (params,
per-step metrics every ``metric_every`` steps, final metrics) or per policy for replays
(value and interval per estimator). The parent carries the plot and the results JSON.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import tracking
from experiments.definitions import Experiment
from learners import make_policy
from simulator.logs import read_log
from simulator.plots import plot_simulation
from simulator.runner import SimulationResult, compare_simulations, replay, sweep

Progress = Callable[[int], None]


@dataclass
class RunRecord:
    experiment: str
    run_id: str
    summary: dict[str, Any]


def _initial_models(experiment: Experiment) -> dict[str, bytes]:
    if not experiment.warm_start:
        return {}
    from experiments.registry import load_policy_bytes

    return {spec: load_policy_bytes(uri) for spec, uri in experiment.warm_start.items()}


def _step_points(result: SimulationResult, every: int) -> list[tuple[str, float, int]]:
    points: list[tuple[str, float, int]] = []
    total = regret = 0.0
    window: list[float] = []
    for step, (reward, got, best) in enumerate(
        zip(result.rewards, result.expected, result.optimal, strict=True), 1
    ):
        total += reward
        regret += best - got
        window.append(reward)
        if step % every == 0 or step == result.steps:
            points += [("cumulative_reward", total, step), ("cumulative_regret", regret, step),
                       ("moving_mean_reward", sum(window) / len(window), step)]
            window = []
    return points


def run_experiment(experiment: Experiment, progress: Progress | None = None) -> RunRecord:
    api = tracking.client()
    exp_id = tracking.experiment_id(api, experiment.name)
    base_tags = {"raybandit.kind": experiment.kind, "raybandit.experiment": experiment.name}
    parent = tracking.start_run(api, exp_id, f"{experiment.name}", {**base_tags,
                                "raybandit.role": "parent"})
    try:
        tracking.log_params(api, parent, {
            "kind": experiment.kind, "env": experiment.env, "log": experiment.log,
            "policies": ",".join(experiment.policies), "baseline": experiment.baseline_policy,
            "steps": experiment.steps, "seeds": experiment.seeds,
            "estimators": ",".join(experiment.estimators),
        })
        if experiment.kind == "simulate":
            summary = _simulate(api, exp_id, parent, experiment, base_tags, progress)
        else:
            summary = _replay(api, exp_id, parent, experiment, base_tags, progress)
    except BaseException:
        tracking.finish(api, parent, "FAILED")
        raise
    tracking.finish(api, parent)
    return RunRecord(experiment.name, parent, summary)


def _simulate(api: Any, exp_id: str, parent: str, experiment: Experiment,
              base_tags: dict[str, str], progress: Progress | None) -> dict[str, Any]:
    assert experiment.env is not None
    results = sweep(experiment.env, experiment.policies, experiment.steps,
                    list(range(experiment.seeds)), use_ray=experiment.use_ray,
                    progress=progress, initial_models=_initial_models(experiment))
    for result in results:
        child = tracking.start_run(api, exp_id, f"{result.policy} seed={result.seed}", {
            **base_tags, "raybandit.role": "child", "raybandit.policy": result.policy,
            "raybandit.seed": str(result.seed)}, parent=parent)
        policy = make_policy(result.policy)
        tracking.log_params(api, child, {"policy": result.policy, "seed": result.seed,
                                         "env": experiment.env, "steps": experiment.steps,
                                         **{f"policy.{k}": v for k, v in
                                            policy.params().items()}})
        tracking.log_metrics(api, child, _step_points(result, experiment.metric_every))
        tracking.log_metrics(api, child, [
            ("mean_reward", result.mean_reward, result.steps),
            ("final_cumulative_regret", result.cumulative_regret, result.steps),
            ("optimal_mean_reward", result.optimal_mean_reward, result.steps)])
        tracking.finish(api, child)
    comparison = compare_simulations(results, experiment.baseline_policy)
    summary = {
        "env": experiment.env, "steps": experiment.steps,
        "results": [r.summary() for r in results],
        "comparison": [{"policy": c.policy, "mean_reward": c.mean, "ci": list(c.ci),
                        "difference": c.difference, "difference_ci": list(c.difference_ci)}
                       for c in comparison],
    }
    tracking.log_metrics(api, parent, [(f"mean_reward.{c.policy}", c.mean, 0)
                                       for c in comparison])
    with tempfile.TemporaryDirectory() as folder:
        plot = plot_simulation(results, Path(folder) / "curves.png",
                               title=f"{experiment.name}: {experiment.env}")
        data = Path(folder) / "results.json"
        data.write_text(json.dumps(summary, indent=2, default=_finite))
        api.log_artifact(parent, str(plot))
        api.log_artifact(parent, str(data))
    return summary


def _replay(api: Any, exp_id: str, parent: str, experiment: Experiment,
            base_tags: dict[str, str], progress: Progress | None) -> dict[str, Any]:
    assert experiment.log is not None
    report = replay(read_log(experiment.log), experiment.policies, experiment.estimators,
                    baseline=experiment.baseline_policy, log_name=str(experiment.log),
                    progress=progress, initial_models=_initial_models(experiment))
    for spec in experiment.policies:
        child = tracking.start_run(api, exp_id, spec, {
            **base_tags, "raybandit.role": "child", "raybandit.policy": spec}, parent=parent)
        tracking.log_params(api, child, {"policy": spec, "log": experiment.log})
        points = []
        for r in report.results:
            if r.policy != spec:
                continue
            e = r.estimate
            for key, value in ((r.estimator, e.value), (f"{r.estimator}.ci_low", e.ci[0]),
                               (f"{r.estimator}.ci_high", e.ci[1]), (f"{r.estimator}.n", e.n)):
                if math.isfinite(value):
                    points.append((key, value, 0))
        tracking.log_metrics(api, child, points)
        tracking.finish(api, child)
    tracking.log_metrics(api, parent, [("n_events", report.n_events, 0),
                                       ("n_skipped", report.n_skipped, 0)])
    summary = {"log": str(experiment.log), "n_events": report.n_events,
               "n_skipped": report.n_skipped, "results": [r.summary() for r in report.results]}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "results.json"
        data.write_text(json.dumps(summary, indent=2, default=_finite))
        api.log_artifact(parent, str(data))
    return summary


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)
