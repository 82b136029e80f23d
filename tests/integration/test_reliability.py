"""Reliability as features: nothing acknowledged is lost or learned twice when a learner or a
ranking replica dies under load; a Redis outage is a fast 503 and heals by itself; bad input
is a 4xx that changes nothing (property-based)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve.export import iter_log
from tests.integration.conftest import wait_for

ACTIONS = [{"id": f"c{i}", "features": {"k": i}} for i in range(4)]


def replica_actor(deployment: str):
    import ray
    from ray.util import list_named_actors

    for actor in list_named_actors(all_namespaces=True):
        if f"#{deployment}#" in actor["name"]:
            return ray.get_actor(actor["name"], namespace=actor["namespace"])
    raise AssertionError(f"no replica of {deployment}")


def run_load(url: str, threads: int, rounds: int, on_half: callable) -> tuple[set, dict]:
    ranked: set[str] = set()
    acked: dict[str, float] = {}
    lock = threading.Lock()
    half = threading.Event()

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for i in range(rounds):
                if index == 0 and i == rounds // 2:
                    half.set()
                try:
                    r = http.post("/v1/rank", json={"context": {"w": index}, "actions": ACTIONS})
                except httpx.HTTPError:
                    continue
                if r.status_code != 200:
                    continue
                event_id = r.json()["event_id"]
                with lock:
                    ranked.add(event_id)
                if i % 3 == 0:
                    continue  # some decisions get no reward: learned with the default
                reward = 1.0 if r.json()["chosen"] == "c1" else 0.5
                try:
                    answer = http.post("/v1/reward", json={"event_id": event_id,
                                                           "reward": reward})
                except httpx.HTTPError:
                    continue
                if answer.status_code == 202:
                    with lock:
                        acked[event_id] = reward

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    half.wait(60)
    on_half()
    for thread in pool:
        thread.join(120)
    return ranked, acked


def assert_exactly_once(service, ranked: set, acked: dict) -> None:
    store = redis.Redis.from_url(service.settings.redis_url)
    wait_for(lambda: store.zcard("rb:deadlines") == 0, timeout=30)

    def learner_caught_up() -> bool:
        version = int(store.hget("rb:model:vw:squarecb", "version") or 0)
        return version == store.xlen("rb:log")

    wait_for(learner_caught_up, timeout=30)  # every logged example learned exactly once
    counts = Counter()
    rewards = {}
    for record in iter_log(store):
        counts[record["event_id"]] += 1
        rewards[record["event_id"]] = record["reward"]
    assert all(counts[e] == 1 for e in ranked), "a decision is missing from or doubled in the log"
    assert all(rewards[e] == r for e, r in acked.items()), "an acknowledged reward was lost"
    assert len(acked) > 50


def test_learner_killed_under_load_loses_and_doubles_nothing(service) -> None:
    import ray

    ranked, acked = run_load(service.settings.url, threads=4, rounds=80,
                             on_half=lambda: ray.kill(replica_actor("Learner"), no_restart=True))
    assert_exactly_once(service, ranked, acked)


def test_ranking_replica_killed_under_load_loses_nothing(service) -> None:
    import ray

    ranked, acked = run_load(service.settings.url, threads=4, rounds=80,
                             on_half=lambda: ray.kill(replica_actor("Ingress"), no_restart=True))
    assert_exactly_once(service, ranked, acked)


def test_redis_outage_is_a_fast_503_and_heals(service, redis_server) -> None:
    url = service.settings.url
    redis_server.stop()
    try:
        # a hung request would raise httpx.ReadTimeout here instead of answering
        answer = httpx.post(f"{url}/v1/rank", json={"context": {}, "actions": ACTIONS},
                            timeout=15)
        assert answer.status_code == 503 and "unavailable" in answer.json()["detail"]
        assert httpx.get(f"{url}/readyz", timeout=15).status_code == 503
        assert httpx.post(f"{url}/v1/reward", json={"event_id": "x", "reward": 1},
                          timeout=15).status_code == 503
    finally:
        redis_server.start()

    def healed() -> bool:
        # every replica heals on its own (HAProxy spreads these over both): several answers
        # in a row, not just the first replica that reconnects
        return all(httpx.post(f"{url}/v1/rank", json={"context": {}, "actions": ACTIONS},
                              timeout=10).status_code == 200 for _ in range(8))

    wait_for(healed, timeout=30)
    r = httpx.post(f"{url}/v1/rank", json={"context": {}, "actions": ACTIONS}).json()
    assert httpx.post(f"{url}/v1/reward",
                      json={"event_id": r["event_id"], "reward": 1}).status_code == 202
    assert httpx.get(f"{url}/readyz").status_code == 200


# -- bad input, generated -------------------------------------------------------------------

junk = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                 st.lists(st.integers(), max_size=2), st.floats(allow_nan=True))
bad_numbers = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e6, -1e6])
good_action = st.builds(lambda i: {"id": f"a{i}", "features": {"x": 1}}, st.integers(0, 999))

bad_rank = st.one_of(
    st.fixed_dictionaries({"context": st.dictionaries(st.text(max_size=3), junk),
                           "actions": st.just([])}),
    st.fixed_dictionaries({"actions": st.sampled_from([[{"id": "a"}, {"id": "a"}],
                                                       [{"id": 1}, {"id": "1"}]])}),
    st.fixed_dictionaries({"actions": st.lists(st.fixed_dictionaries({"id": st.one_of(
        st.none(), st.floats(), st.lists(st.integers(), max_size=1),
        st.sampled_from(["", " \t"]))}),
        min_size=1, max_size=3)}),
    st.fixed_dictionaries({"context": st.one_of(st.lists(st.integers()), st.text(), st.integers()),
                           "actions": st.lists(good_action, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"context": st.fixed_dictionaries({"v": bad_numbers.filter(
        lambda v: v != v or abs(v) == float("inf"))}),
        "actions": st.lists(good_action, min_size=1, max_size=2, unique_by=lambda a: a["id"])}),
    st.fixed_dictionaries({"actions": st.just([{"id": f"n{i}"} for i in range(201)])}),
    st.fixed_dictionaries({"actions": st.just([{"id": "a"}]), "top_k": st.integers(-5, 0)}),
    st.fixed_dictionaries({"actions": st.just([{"id": "a"}]), "surprise": junk}),
    st.fixed_dictionaries({"actions": st.just([{"id": "a"}]),
                           "event_id": st.sampled_from(["has space", "x" * 200, "a/b"])}),
)
bad_reward = st.one_of(
    st.fixed_dictionaries({"event_id": st.text(alphabet="0123456789abcdef", min_size=32,
                                               max_size=32), "reward": st.floats(0, 1)}),
    st.fixed_dictionaries({"event_id": st.just("e"), "reward": bad_numbers}),
    st.fixed_dictionaries({"event_id": st.just("e"), "type": st.text(max_size=8).filter(
        lambda t: t not in ("view", "click", "like", "dislike", "share", "purchase",
                            "rating", "dismiss"))}),
    st.fixed_dictionaries({"event_id": st.just("e"), "type": st.just("rating"),
                           "value": st.one_of(st.none(), st.floats(-3, 0.9),
                                              st.floats(5.1, 100))}),
    st.fixed_dictionaries({"event_id": st.just("e"), "reward": st.just(1),
                           "type": st.just("click")}),
    st.fixed_dictionaries({"reward": st.just(1)}),
    st.fixed_dictionaries({"event_id": junk.filter(lambda v: not isinstance(v, str)),
                           "reward": st.just(1)}),
)


def state(url: str, redis_url: str) -> tuple:
    store = redis.Redis.from_url(redis_url)
    stats = httpx.get(f"{url}/v1/stats").json()
    return (json.dumps(stats["policies"][0], sort_keys=True), store.xlen("rb:log"),
            store.dbsize())


@pytest.fixture()
def quiet_service(service):
    store = redis.Redis.from_url(service.settings.redis_url)
    wait_for(lambda: store.zcard("rb:deadlines") == 0, timeout=30)
    time.sleep(0.3)
    return service


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path_body=st.one_of(st.tuples(st.just("/v1/rank"), bad_rank),
                           st.tuples(st.just("/v1/reward"), bad_reward),
                           st.tuples(st.just("/v1/events"),
                                     st.fixed_dictionaries({"events": st.just([])})),
                           st.tuples(st.sampled_from(["/v1/rank", "/v1/reward"]),
                                     st.binary(max_size=20))))
def test_bad_requests_get_a_4xx_and_change_nothing(quiet_service, path_body) -> None:
    url, redis_url = quiet_service.settings.url, quiet_service.settings.redis_url
    path, body = path_body
    before = state(url, redis_url)
    content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True)
    answer = httpx.post(f"{url}{path}", content=content,
                        headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500, (path, body, answer.status_code, answer.text)
    assert "detail" in answer.json()
    assert state(url, redis_url) == before


def test_oversized_body_is_413(quiet_service) -> None:
    url = quiet_service.settings.url
    big = json.dumps({"context": {"blob": "x" * 1_200_000}, "actions": [{"id": "a"}]})
    answer = httpx.post(f"{url}/v1/rank", content=big,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "detail" in answer.json()
