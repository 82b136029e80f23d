"""Apprentice mode's comparison against the caller's baseline: it graduates a policy that has
learned to beat the baseline, and never one that has not (seeded problems, real learning)."""

from __future__ import annotations

import random

import pytest

from learners import make_policy
from learners.evaluation import BaselineComparison, MeanStat, _sequential_z
from tests.learners.problems import ACTIONS, BASE, CLICK, ITEMS, UNIFORM_MEAN, USERS

FAVOURITE = {"tom": "c", "anna": "d"}


def apprentice(baseline_rule, steps: int, seed: int, min_events: int = 200,
               comparison: BaselineComparison | None = None, policy=None):
    """Show the baseline every time; the policy learns from it and is compared to it."""
    rng = random.Random(seed)
    policy = policy or make_policy("vw:squarecb", seed=seed)
    comparison = comparison or BaselineComparison(min_events=min_events)
    graduated_at = None
    for _ in range(steps):
        user = USERS[rng.randrange(2)]
        context = {"user": user}
        baseline = baseline_rule(user, rng)
        reward = float(rng.random() < CLICK.get((user, baseline), BASE))
        pmf = policy.distribution(context, ACTIONS)
        comparison.add(pmf, ITEMS.index(baseline), reward, context, ACTIONS)
        policy.learn(context, ACTIONS, baseline, 1.0, reward)
        if comparison.check() and graduated_at is None:
            graduated_at = comparison.difference.n
    return policy, comparison, graduated_at


def random_baseline(user: str, rng: random.Random) -> str:
    return rng.choice(ITEMS)  # e.g. an editor's pick that ignores the user


def oracle_baseline(user: str, rng: random.Random) -> str:
    return FAVOURITE[user]  # already the best possible choice


@pytest.mark.parametrize("seed", [1, 2])
def test_a_policy_that_learned_to_beat_the_baseline_graduates(seed: int) -> None:
    _, comparison, graduated_at = apprentice(random_baseline, 1500, seed)
    assert graduated_at is not None and graduated_at >= 200
    summary = comparison.summary()
    # the baseline earns about the uniform mean (0.36); the policy's estimate is far above
    assert abs(summary["baseline_mean_reward"] - UNIFORM_MEAN) < 0.05
    assert summary["policy_estimate"] > 0.6
    assert summary["difference_ci"][0] > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_policy_never_graduates_against_a_baseline_it_cannot_beat(seed: int) -> None:
    _, comparison, graduated_at = apprentice(oracle_baseline, 2000, seed, min_events=100)
    assert graduated_at is None
    assert comparison.looks == 20  # it was checked all along, and said no every time
    assert comparison.summary()["difference"] <= 0.02


def test_graduation_waits_for_min_events() -> None:
    _, comparison, graduated_at = apprentice(random_baseline, 900, 4, min_events=800)
    assert graduated_at == 800 and comparison.looks == 1


def test_a_saved_comparison_continues_identically() -> None:
    policy, first, _ = apprentice(random_baseline, 150, 5, min_events=10_000)
    state, model = first.save()
    restored = BaselineComparison.restore(state, model, 10_000, 0.0)
    snapshot = policy.save()
    # continue both from the same point with the same stream
    _, a, _ = apprentice(random_baseline, 100, 6, comparison=first, policy=policy)
    _, b, _ = apprentice(random_baseline, 100, 6, comparison=restored,
                         policy=make_policy("vw:squarecb").load(snapshot))
    assert a.summary() == pytest.approx(b.summary())


def test_repeated_looks_get_stricter() -> None:
    assert 2.0 < _sequential_z(1) < _sequential_z(2) < _sequential_z(50)


def test_mean_stat_state_round_trip() -> None:
    stat = MeanStat()
    for x in (0.5, 1.0, 2.0):
        stat.add(x)
    again = MeanStat.from_state(stat.state())
    assert again.estimate() == stat.estimate()


def test_reward_model_matches_pyvw_and_learns() -> None:
    """The reward model calls VW's binding directly; pyvw's own calls give the same numbers."""
    from vowpalwabbit import Workspace

    from learners.evaluation import RewardModel
    from learners.types import as_actions

    model = RewardModel()
    reference = Workspace(quiet=True, interactions=["ca", "ci"])
    rng = random.Random(9)
    actions = as_actions(ACTIONS)
    for _ in range(300):
        user = rng.choice(USERS)
        chosen = rng.randrange(len(ITEMS))
        reward = float(rng.random() < CLICK.get((user, ITEMS[chosen]), BASE))
        texts = model._texts({"user": user}, actions)
        theirs = [float(reference.predict(text)) for text in texts]
        ours = model.predict_and_learn({"user": user}, actions, chosen, reward)
        reference.learn(f"{reward!r} {texts[chosen]}")
        assert ours == pytest.approx(theirs, abs=1e-9)
    # it learned Tom's favourite: "c" is predicted well above a neutral item
    final = model.predict_and_learn({"user": "tom"}, actions, 0, None)
    assert final[ITEMS.index("c")] > final[ITEMS.index("b")] + 0.3
