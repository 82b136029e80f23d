"""Online simulation: learning policies beat uniform, recover after a taste swap; Ray sweeps."""

from __future__ import annotations

import statistics

import pytest

from learners import SpecError
from simulator.environments import make_environment
from simulator.runner import compare_simulations, simulate, sweep


def late_mean(result, fraction: float = 0.25) -> float:
    tail = result.rewards[-int(len(result.rewards) * fraction):]
    return statistics.fmean(tail)


@pytest.mark.parametrize("spec", ["vw:squarecb", "river:linucb"])
def test_learning_policy_beats_uniform_on_personalization(spec: str) -> None:
    learned = simulate("personalization", spec, 2000, seed=1)
    uniform = simulate("personalization", "uniform", 2000, seed=1)
    assert learned.optimal_mean_reward == pytest.approx(0.8)
    # uniform earns ~0.2 (one liked topic in seven); the optimum is 0.8
    assert late_mean(uniform) < 0.3
    assert late_mean(learned) > late_mean(uniform) + 0.3
    assert learned.cumulative_regret < uniform.cumulative_regret / 2


@pytest.mark.parametrize("spec", ["vw:squarecb", "river:linucb?mode=disjoint"])
def test_learning_policy_beats_uniform_on_digits(spec: str) -> None:
    learned = simulate("classification:digits", spec, 3000, seed=0)
    uniform = simulate("classification:digits", "uniform", 3000, seed=0)
    # ten classes: uniform earns ~0.1
    assert late_mean(uniform) < 0.2
    assert late_mean(learned) > 0.6


def test_learning_policy_recovers_after_the_taste_swap() -> None:
    # a constant learning rate (power_t=0) is what drifting preferences need
    result = simulate("personalization?swap_at=0.5", "vw:squarecb?power_t=0", 4000, seed=2)
    before_swap = statistics.fmean(result.rewards[1500:2000])
    just_after = statistics.fmean(result.rewards[2000:2200])
    recovered = statistics.fmean(result.rewards[-500:])
    assert before_swap > 0.65
    assert just_after < before_swap - 0.1  # the swap really hurts at first
    assert recovered > 0.65  # and the policy adapts


def test_linear_environment_has_exact_regret() -> None:
    result = simulate("linear", "uniform", 500, seed=3)
    assert result.cumulative_regret == pytest.approx(
        sum(result.optimal) - sum(result.expected))
    assert result.cumulative_regret > 0


def test_paired_comparison_uses_common_random_numbers() -> None:
    a = simulate("personalization", "fixed", 300, seed=4)
    b = simulate("personalization", "fixed", 300, seed=4)
    (row,) = [c for c in compare_simulations([a], "fixed")]
    assert a.rewards == b.rewards and row.difference == 0.0


def test_bad_environment_specs_are_clear() -> None:
    with pytest.raises(SpecError, match="unknown environment"):
        make_environment("moon")
    with pytest.raises(SpecError, match="`dataset` must be one of"):
        make_environment("classification:mnist784")
    with pytest.raises(SpecError, match="`swap_at`"):
        make_environment("personalization?swap_at=2")


def test_sweep_runs_as_ray_tasks(ray_session) -> None:
    results = sweep("personalization", ["uniform", "vw:epsilon"], 400, [0, 1], use_ray=True)
    assert [(r.policy, r.seed) for r in results] == [
        ("uniform", 0), ("uniform", 1), ("vw:epsilon", 0), ("vw:epsilon", 1)]
    local = simulate("personalization", "vw:epsilon", 400, seed=1)
    assert results[3].rewards == local.rewards  # same seed, same run, wherever it ran
