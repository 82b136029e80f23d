"""A small synthetic preference problem shared by the learner tests."""

from __future__ import annotations

import random

ITEMS = ["a", "b", "c", "d", "e"]
USERS = ["tom", "anna"]
# Item "a" is liked by everyone (what popularity can find); "c" is Tom's and "d" Anna's
# favourite (what only a contextual policy can find).
CLICK = {
    ("tom", "a"): 0.6, ("anna", "a"): 0.6,
    ("tom", "c"): 0.9, ("anna", "d"): 0.9,
}
BASE = 0.1
ACTIONS = [{"id": item, "features": {"kind": item, "len": 1 + ITEMS.index(item) % 2}}
           for item in ITEMS]
UNIFORM_MEAN = sum(
    CLICK.get((user, item), BASE) for user in USERS for item in ITEMS
) / (len(USERS) * len(ITEMS))


def play(policy, steps: int, seed: int) -> list[float]:
    """Run the policy online; return the reward of every step."""
    rng = random.Random(seed)
    rewards = []
    for step in range(steps):
        user = USERS[rng.randrange(2)]
        context = {"user": user}
        ranking = policy.rank(context, ACTIONS, event_id=f"{seed}-{step}")
        reward = float(rng.random() < CLICK.get((user, ranking.chosen), BASE))
        policy.learn(context, ACTIONS, ranking.chosen, ranking.probability, reward)
        rewards.append(reward)
    return rewards
