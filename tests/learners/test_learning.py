"""Every learning policy learns: seeded runs on a problem with a known answer."""

from __future__ import annotations

import statistics

import pytest

from learners import make_policy
from tests.learners.problems import UNIFORM_MEAN, play

CONTEXTUAL = [
    "vw:epsilon", "vw:squarecb", "vw:bag", "vw:cover", "vw:softmax", "vw:rnd",
    "river:epsilon", "river:linucb", "river:thompson",
    "river:linucb?mode=disjoint", "river:thompson?mode=disjoint", "river:epsilon?mode=disjoint",
]
STEPS = 1500


@pytest.mark.parametrize("spec", CONTEXTUAL)
def test_contextual_policy_learns_each_users_favourite(spec: str) -> None:
    rewards = play(make_policy(spec, seed=11), STEPS, seed=5)
    late = statistics.fmean(rewards[-500:])
    # Uniform earns ~0.34 and the best context-free choice 0.6; a contextual learner must
    # go clearly beyond both (the optimum is 0.9; 0.06 is three standard errors here).
    assert late > 0.66, f"{spec}: late mean reward {late:.3f}"


def test_popularity_finds_the_item_everyone_likes() -> None:
    rewards = play(make_policy("popularity", seed=3), STEPS, seed=5)
    late = statistics.fmean(rewards[-500:])
    assert late > UNIFORM_MEAN + 0.15, f"late mean reward {late:.3f} vs uniform {UNIFORM_MEAN}"


def test_uniform_does_not_learn() -> None:
    rewards = play(make_policy("uniform", seed=3), STEPS, seed=5)
    assert abs(statistics.fmean(rewards) - UNIFORM_MEAN) < 0.05
