"""Online A/B in the service: a traffic split, sticky per user, recorded in every decision,
with per-arm statistics and the difference to the control arm."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
import redis

from serve.client import Client
from serve.export import iter_log
from tests.integration.conftest import swapped_service, wait_for

ITEMS = [{"id": f"i{k}", "features": {"topic": f"t{k}"}} for k in range(5)]


@pytest.fixture()
def ab_service(service, tmp_path):
    with swapped_service(service, tmp_path, arms={"uniform": 1.0, "vw:squarecb": 1.0},
                         control="uniform") as ab:
        yield ab


def test_split_sticky_recorded_and_the_better_arm_wins(ab_service) -> None:
    rng = random.Random(8)
    users = [f"user-{n}" for n in range(200)]
    taste = {user: f"i{rng.randrange(5)}" for user in users}
    arm_of: dict[str, set[str]] = defaultdict(set)
    with Client(ab_service.settings.url) as client:
        for _ in range(4):
            for user in users:
                r = client.rank({"taste": taste[user]}, ITEMS, user_id=user)
                arm_of[user].add(r["policy"])
                liked = r["chosen"] == taste[user]
                if rng.random() < (0.9 if liked else 0.05):
                    client.reward(r["event_id"], 1.0)
        store = redis.Redis.from_url(ab_service.settings.redis_url)
        wait_for(lambda: store.zcard("rb:deadlines") == 0, timeout=20)
        stats = client.stats()
    assert all(len(arms) == 1 for arms in arm_of.values()), "assignment is not sticky"
    per_arm = Counter(next(iter(arms)) for arms in arm_of.values())
    assert set(per_arm) == {"uniform", "vw:squarecb"}
    assert abs(per_arm["uniform"] - 100) <= 25, per_arm  # 50/50 within ~3.5 sigma
    logged = Counter(record["policy"] for record in iter_log(store))
    arms = {row["policy"]: row for row in stats["policies"]}
    assert stats["control"] == "uniform"
    assert sum(row["decisions"] for row in arms.values()) == 800
    assert sum(row["learned"] for row in arms.values()) == 800 == sum(logged.values())
    for spec, row in arms.items():
        assert row["decisions"] == row["learned"] == logged[spec] == 4 * per_arm[spec]
    better, weaker = arms["vw:squarecb"], arms["uniform"]
    assert better["mean_reward_ci"][0] > weaker["mean_reward_ci"][1]
    assert better["difference_to_control"] > 0 and better["difference_ci"][0] > 0
    # every arm learns from every arm's decisions (off-policy): the model sees all 800
    # (once the learner has published its last update)
    wait_for(lambda: int(store.hget("rb:model:vw:squarecb", "version") or 0) == 800,
             timeout=10)
