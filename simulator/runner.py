"""Running policies: online simulation against an environment, and replay of a logged stream.

``simulate`` plays one policy on one seed and returns its reward/regret curve;
``sweep`` runs policies x seeds, in parallel as Ray tasks when asked; ``replay`` streams a
log once and evaluates every policy with every estimator in the same pass, progressively
(each decision is scored before the policy learns from it), so paired differences to a
baseline come for free.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from learners import make_policy
from learners.evaluation import Z95, Estimate, MeanStat, RewardModel
from learners.types import LoggedDecision
from simulator.environments import make_environment
from simulator.estimators import Estimator, make_estimator

Progress = Callable[[int], None]


@dataclass
class SimulationResult:
    """One (policy, seed) run: per-step rewards, expected rewards and the optimum."""

    env: str
    policy: str
    seed: int
    rewards: list[float]
    expected: list[float]
    optimal: list[float]

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def mean_reward(self) -> float:
        return math.fsum(self.rewards) / self.steps

    @property
    def optimal_mean_reward(self) -> float:
        return math.fsum(self.optimal) / self.steps

    @property
    def regret_curve(self) -> list[float]:
        """Cumulative pseudo-regret: sum of (best expected - chosen's expected)."""
        total, curve = 0.0, []
        for best, got in zip(self.optimal, self.expected, strict=True):
            total += best - got
            curve.append(total)
        return curve

    @property
    def cumulative_regret(self) -> float:
        return math.fsum(b - g for b, g in zip(self.optimal, self.expected, strict=True))

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "seed": self.seed,
            "mean_reward": self.mean_reward,
            "cumulative_regret": self.cumulative_regret,
            "optimal_mean_reward": self.optimal_mean_reward,
        }


def simulate(
    env_spec: str, policy_spec: str, steps: int, seed: int, progress: Progress | None = None,
    initial_model: bytes | None = None,
) -> SimulationResult:
    """Play ``policy_spec`` online for ``steps`` rounds of ``env_spec`` with ``seed``;
    ``initial_model`` (``Policy.save`` bytes) warm-starts the policy."""
    env = make_environment(env_spec)
    policy = make_policy(policy_spec, seed=seed)
    if initial_model is not None:
        policy.load(initial_model)
    rewards, expected, optimal = [], [], []
    tick = max(1, steps // 100)
    for step, rnd in enumerate(env.rounds(steps, seed)):
        ranking = policy.rank(rnd.context, rnd.actions, seed=seed * 1_000_003 + step)
        index = next(i for i, a in enumerate(rnd.actions) if a["id"] == ranking.chosen)
        reward = rnd.reward(index)
        policy.learn(rnd.context, rnd.actions, ranking.chosen, ranking.probability, reward)
        rewards.append(reward)
        expected.append(rnd.expected[index])
        optimal.append(rnd.best)
        if progress is not None and (step + 1) % tick == 0:
            progress(tick)
    if progress is not None and steps % tick:
        progress(steps % tick)
    return SimulationResult(env.spec, policy_spec, seed, rewards, expected, optimal)


def sweep(
    env_spec: str,
    policy_specs: Sequence[str],
    steps: int,
    seeds: Sequence[int],
    use_ray: bool = True,
    progress: Progress | None = None,
    initial_models: dict[str, bytes] | None = None,
) -> list[SimulationResult]:
    """All (policy, seed) runs; as Ray tasks (one per run) when ``use_ray``."""
    warm = initial_models or {}
    make_environment(env_spec)  # fail fast on a bad spec, before any task starts
    for spec in policy_specs:
        make_policy(spec)
    jobs = [(spec, seed) for spec in policy_specs for seed in seeds]
    if not use_ray or len(jobs) == 1:
        return [simulate(env_spec, spec, steps, seed, progress, warm.get(spec))
                for spec, seed in jobs]
    import ray

    from simulator.cluster import ensure_ray

    ensure_ray()
    remote: Any = ray.remote(num_cpus=1)(simulate)
    pending = {remote.remote(env_spec, spec, steps, seed, None, warm.get(spec)): i
               for i, (spec, seed) in enumerate(jobs)}
    results: list[SimulationResult | None] = [None] * len(jobs)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            results[pending.pop(ref)] = ray.get(ref)
            if progress is not None:
                progress(steps)
    return [r for r in results if r is not None]


@dataclass
class Comparison:
    """A policy's mean and its paired difference to the baseline, with 95% intervals."""

    policy: str
    mean: float
    ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    n: int


def _interval(stat: MeanStat) -> tuple[float, tuple[float, float]]:
    estimate = stat.estimate()
    return estimate.value, estimate.ci


def compare_simulations(
    results: Sequence[SimulationResult], baseline: str
) -> list[Comparison]:
    """Per policy: mean reward over all its steps, and the per-step paired difference to the
    baseline on the same seed (same contexts and the same reward draws)."""
    by_key = {(r.policy, r.seed): r for r in results}
    out = []
    for policy in dict.fromkeys(r.policy for r in results):
        mean, diff = MeanStat(), MeanStat()
        for r in results:
            if r.policy != policy:
                continue
            base = by_key.get((baseline, r.seed))
            for i, reward in enumerate(r.rewards):
                mean.add(reward)
                if base is not None:
                    diff.add(reward - base.rewards[i])
        value, ci = _interval(mean)
        d_value, d_ci = _interval(diff)
        out.append(Comparison(policy, value, ci, d_value, d_ci, mean.n))
    return out


# -- replay -------------------------------------------------------------------------------------

@dataclass
class ReplayResult:
    policy: str
    estimator: str
    estimate: Estimate
    difference: Estimate | None = None  # paired, to the baseline policy

    def summary(self) -> dict[str, Any]:
        e = self.estimate
        return {"policy": self.policy, "estimator": self.estimator, "value": _num(e.value),
                "ci": [_num(e.ci[0]), _num(e.ci[1])], "n": e.n}


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class ReplayReport:
    log: str
    n_events: int
    n_skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    results: list[ReplayResult] = field(default_factory=list)


def replay(
    decisions: Iterable[LoggedDecision],
    policy_specs: Sequence[str],
    estimators: Sequence[str] = ("replay", "ips", "snips", "dm", "dr"),
    baseline: str | None = None,
    log_name: str = "",
    learn: bool = True,
    progress: Progress | None = None,
    initial_models: dict[str, bytes] | None = None,
) -> ReplayReport:
    """Evaluate every policy on one pass over ``decisions``.

    Each decision: each policy gives its distribution and its own sampled choice (seeded by
    the event id), the estimators take their terms, then the policy learns the logged example
    with its logged probability. Decisions with a missing or zero probability, or no reward,
    are counted in ``skipped_reasons`` and not used.
    """
    policies = {spec: make_policy(spec, seed=0) for spec in policy_specs}
    for spec, data in (initial_models or {}).items():
        policies[spec].load(data)
    stats = {(spec, name): make_estimator(name) for spec in policy_specs for name in estimators}
    diffs = {(spec, name): make_estimator(name) for spec in policy_specs for name in estimators}
    model = RewardModel() if {"dm", "dr"} & set(estimators) else None
    report = ReplayReport(log=log_name, n_events=0)
    for decision in decisions:
        report.n_events += 1
        if progress is not None:
            progress(1)
        reason = _skip_reason(decision)
        if reason:
            report.n_skipped += 1
            report.skipped_reasons[reason] = report.skipped_reasons.get(reason, 0) + 1
            continue
        actions = decision.typed_actions()
        ids = [a.id for a in actions]
        chosen = ids.index(decision.chosen)
        p_log = float(decision.probability or 0.0)
        reward = float(decision.reward or 0.0)
        predictions = (model.predict_and_learn(decision.context, actions, chosen, reward)
                       if model else [0.0] * len(ids))
        terms: dict[str, dict[str, Any]] = {}  # policy -> this decision's estimator inputs
        for spec, policy in policies.items():
            ranking = policy.rank(decision.context, actions, event_id=decision.event_id)
            inputs: dict[str, Any] = {
                "probability": p_log,
                "reward": reward,
                "target_probability": ranking.pmf[chosen],
                "matched": ranking.chosen == decision.chosen,
                "predicted": predictions[chosen],
                "predicted_value": math.fsum(p * r for p, r in zip(ranking.pmf, predictions,
                                                                     strict=True)),
            }
            for name in estimators:
                stats[(spec, name)].add(**inputs)
            terms[spec] = inputs
            if learn:
                policy.learn(decision.context, actions, decision.chosen, p_log, reward)
        if baseline is not None:
            _add_paired(diffs, terms, baseline)
    for spec in policy_specs:
        for name in estimators:
            result = ReplayResult(spec, name, stats[(spec, name)].estimate())
            if baseline is not None and name != "replay":
                result.difference = diffs[(spec, name)]._stat.estimate()
            report.results.append(result)
    return report


def _add_paired(
    diffs: dict[tuple[str, str], Estimator], terms: dict[str, dict[str, Any]], baseline: str
) -> None:
    """Paired difference of per-decision terms, policy minus baseline (not for replay and
    snips, whose value is not a mean of per-decision terms)."""
    for (spec, name), estimator in diffs.items():
        if name in ("replay", "snips"):
            continue
        own = estimator.term(**terms[spec])
        base = estimator.term(**terms[baseline])
        estimator._stat.add(own - base)


def _skip_reason(decision: LoggedDecision) -> str | None:
    if decision.probability is None:
        return "missing probability"
    if decision.probability <= 0:
        return "zero probability"
    if decision.reward is None:
        return "no reward"
    if decision.chosen not in [a.id for a in decision.actions]:
        return "chosen action not among the actions"
    return None


def seed_interval(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Mean over seeds with a normal 95% interval (for experiment comparisons)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, (math.nan, math.nan)
    half = Z95 * statistics.stdev(values) / math.sqrt(len(values))
    return mean, (mean - half, mean + half)
