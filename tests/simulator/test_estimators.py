"""Estimators on logged data where the target policy's value is known exactly."""

from __future__ import annotations

import random

import pytest

from learners import make_policy
from learners.types import LoggedDecision
from simulator.estimators import MeanStat, make_estimator
from simulator.runner import replay

K = 4
MEANS = {  # expected reward of each action, by context
    "x": [0.2, 0.8, 0.4, 0.1],
    "y": [0.7, 0.1, 0.3, 0.5],
}
TARGET = {  # a fixed stochastic target policy
    "x": [0.1, 0.7, 0.1, 0.1],
    "y": [0.6, 0.1, 0.1, 0.2],
}
TRUE_VALUE = sum(
    sum(p * m for p, m in zip(TARGET[c], MEANS[c], strict=True)) for c in "xy"
) / 2


def logged(n: int, seed: int):
    """Events from a non-uniform logging policy: (context, action, probability, reward)."""
    rng = random.Random(seed)
    logging_pmf = {"x": [0.4, 0.2, 0.2, 0.2], "y": [0.1, 0.3, 0.3, 0.3]}
    for _ in range(n):
        c = rng.choice("xy")
        a = rng.choices(range(K), weights=logging_pmf[c])[0]
        r = 1.0 if rng.random() < MEANS[c][a] else 0.0
        yield c, a, logging_pmf[c][a], r


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_estimate_is_near_the_truth_and_inside_its_interval(name: str) -> None:
    estimator = make_estimator(name)
    # a deliberately biased reward model: DR must correct it
    model = {c: [m + 0.15 for m in MEANS[c]] for c in "xy"}
    for c, a, p, r in logged(20_000, seed=7):
        estimator.add(
            probability=p, reward=r, target_probability=TARGET[c][a],
            predicted=model[c][a],
            predicted_value=sum(q * m for q, m in zip(TARGET[c], model[c], strict=True)),
        )
    est = estimator.estimate()
    assert est.n == 20_000
    assert est.ci[0] <= TRUE_VALUE <= est.ci[1], (name, est, TRUE_VALUE)
    assert abs(est.value - TRUE_VALUE) < 0.02
    assert est.ci[1] - est.ci[0] < 0.05


def test_dm_inherits_the_model_bias_that_dr_removes() -> None:
    dm, dr = make_estimator("dm"), make_estimator("dr")
    model = {c: [m + 0.15 for m in MEANS[c]] for c in "xy"}
    for c, a, p, r in logged(20_000, seed=8):
        value = sum(q * m for q, m in zip(TARGET[c], model[c], strict=True))
        for e in (dm, dr):
            e.add(probability=p, reward=r, target_probability=TARGET[c][a],
                  predicted=model[c][a], predicted_value=value)
    assert dm.estimate().value == pytest.approx(TRUE_VALUE + 0.15, abs=0.01)
    assert dr.estimate().value == pytest.approx(TRUE_VALUE, abs=0.02)


def test_merging_shards_equals_one_pass() -> None:
    events = list(logged(3000, seed=3))
    for name in ("ips", "snips", "dr", "replay"):
        whole, left, right = make_estimator(name), make_estimator(name), make_estimator(name)
        for i, (c, a, p, r) in enumerate(events):
            kwargs = dict(probability=p, reward=r, target_probability=TARGET[c][a],
                          matched=a == 1, predicted=0.5, predicted_value=0.5)
            whole.add(**kwargs)
            (left if i % 2 else right).add(**kwargs)
        left.merge(right)
        assert left.estimate().value == pytest.approx(whole.estimate().value)
        assert left.estimate().ci == pytest.approx(whole.estimate().ci)


def test_mean_stat_matches_statistics() -> None:
    import statistics

    values = [random.Random(1).random() for _ in range(100)]
    stat = MeanStat()
    for v in values:
        stat.add(v)
    assert stat.mean == pytest.approx(statistics.fmean(values))
    assert stat.variance == pytest.approx(statistics.variance(values))


def _uniform_log(n: int, seed: int) -> list[LoggedDecision]:
    """A log written by the uniform policy with its real propensities."""
    rng = random.Random(seed)
    logger = make_policy("uniform", seed=seed)
    actions = [{"id": f"a{i}", "features": {"slot": i}} for i in range(K)]
    out = []
    for i in range(n):
        c = rng.choice("xy")
        r = logger.rank({"c": c}, actions, event_id=f"log-{i}")
        index = int(str(r.chosen)[1:])
        reward = 1.0 if rng.random() < MEANS[c][index] else 0.0
        out.append(LoggedDecision(event_id=f"e{i}", context={"c": c}, actions=actions,
                                  chosen=r.chosen, probability=r.probability, reward=reward,
                                  policy="uniform"))
    return out


def test_replay_of_the_logging_policy_gives_the_on_policy_mean() -> None:
    log = _uniform_log(4000, seed=11)
    on_policy = sum(d.reward for d in log) / len(log)
    report = replay(log, ["uniform"], ["ips", "snips", "replay"])
    values = {r.estimator: r.estimate for r in report.results}
    assert values["ips"].value == pytest.approx(on_policy)  # weights are exactly 1
    assert values["snips"].value == pytest.approx(on_policy)
    assert values["replay"].ci[0] <= on_policy <= values["replay"].ci[1]
    assert values["replay"].n == pytest.approx(len(log) / K, rel=0.1)


def test_replay_recovers_a_known_deterministic_policy_value() -> None:
    log = _uniform_log(8000, seed=12)
    truth = (MEANS["x"][0] + MEANS["y"][0]) / 2  # `fixed` always picks the first action
    report = replay(log, ["fixed", "uniform"], baseline="uniform")
    for result in report.results:
        if result.policy == "fixed":
            assert result.estimate.ci[0] - 0.01 <= truth <= result.estimate.ci[1] + 0.01
            assert result.estimate.value == pytest.approx(truth, abs=0.05), result
    diff = next(r.difference for r in report.results
                if r.policy == "fixed" and r.estimator == "ips")
    uniform_truth = sum(sum(MEANS[c]) / K for c in "xy") / 2
    assert diff is not None
    assert diff.ci[0] <= truth - uniform_truth <= diff.ci[1]


def test_decisions_without_usable_probability_are_reported_not_dropped() -> None:
    log = _uniform_log(10, seed=1)
    log[0].probability = None
    log[1].probability = 0.0
    log[2].reward = None
    report = replay(log, ["uniform"], ["ips"])
    assert report.n_events == 10 and report.n_skipped == 3
    assert report.skipped_reasons == {"missing probability": 1, "zero probability": 1,
                                      "no reward": 1}
    assert report.results[0].estimate.n == 7
