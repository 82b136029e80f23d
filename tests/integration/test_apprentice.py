"""Apprentice mode in the service: the caller's baseline is returned until the policy has
proven, on those very decisions, that it does better; then the service goes live."""

from __future__ import annotations

import random
import subprocess
import sys

import httpx
import pytest
import redis

from serve.client import Client
from serve.state import LOG, parse_log_entry
from tests.integration.conftest import swapped_service

ITEMS = [{"id": f"i{k}", "features": {"topic": f"t{k}"}} for k in range(5)]
FAVOURITE = {"tom": "i1", "anna": "i3"}
MIN_EVENTS = 150


@pytest.fixture()
def apprentice_service(service, tmp_path):
    with swapped_service(service, tmp_path, learning_mode="apprentice",
                         graduation={"min_events": MIN_EVENTS}) as running:
        yield running


def click(rng: random.Random, user: str, item: str) -> float:
    return float(rng.random() < (0.9 if item == FAVOURITE[user] else 0.1))


def test_baseline_until_graduation_then_live(apprentice_service) -> None:
    rng = random.Random(11)
    url = apprentice_service.settings.url
    responses = []
    with Client(url) as client:
        # the caller's current rule: an editor's pick that ignores who is asking
        for step in range(1500):
            user = rng.choice(list(FAVOURITE))
            baseline = rng.choice(ITEMS)["id"]
            r = client.rank({"user": user}, ITEMS, baseline=baseline, event_id=f"e{step}")
            responses.append((baseline, user, r))
            client.reward(r["event_id"], click(rng, user, r["chosen"]))
            if r["mode"] == "live" and step - first_live(responses) >= 200:
                break
        stats = client.stats()["policies"][0]
        # a baseline that is not among the candidates is refused and changes nothing
        refused = httpx.post(f"{url}/v1/rank", json={"actions": ITEMS, "baseline": "nope"})
        assert refused.status_code == 422 and "baseline" in refused.text
        assert client.stats()["policies"][0]["decisions"] == stats["decisions"]
    shown = subprocess.run([sys.executable, "-m", "raybandit", "experiment", "compare", "--live",
                            "--url", url], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "apprentice mode" in shown.stdout and "after" in shown.stdout

    went_live = first_live(responses)
    for baseline, _, r in responses[:went_live]:
        assert r["mode"] == "apprentice"
        assert r["chosen"] == baseline and r["ranking"][0] == {"id": baseline,
                                                                "probability": 1.0}
        assert r["policy_choice"] in {item["id"] for item in ITEMS}
    # not before: the first check comes after MIN_EVENTS learned baseline decisions
    assert went_live >= MIN_EVENTS
    assert all(r["mode"] == "live" for _, _, r in responses[went_live:])
    live = [(user, r) for _, user, r in responses[went_live:]]
    assert sum(r["chosen"] == FAVOURITE[user] for user, r in live) > 0.7 * len(live)

    apprentice = stats["apprentice"]
    assert stats["mode"] == "live" and apprentice["graduated"]
    assert apprentice["graduated_after"] % MIN_EVENTS == 0
    assert apprentice["difference_ci"][0] > 0  # better, and it can say by how much
    assert apprentice["baseline_mean_reward"] < 0.4 < apprentice["policy_estimate"]

    store = redis.Redis.from_url(apprentice_service.settings.redis_url)
    logged = {record["event_id"]: record
              for record in map(parse_log_entry, (f for _, f in store.xrange(LOG)))}
    for baseline, _, r in responses[:went_live]:
        record = logged[r["event_id"]]
        assert record["mode"] == "apprentice" and record["probability"] == 1.0
        assert record["chosen"] == baseline


def first_live(responses: list) -> int:
    return next((i for i, (_, _, r) in enumerate(responses) if r["mode"] == "live"),
                len(responses))
