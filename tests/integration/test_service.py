"""The service over real HTTP: real Ray Serve app, real Redis server."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import redis

from serve.client import APIError, Client
from serve.export import iter_log
from serve.runtime import Service
from serve.schemas import EventsResponse, RankResponse, RewardResponse
from tests.integration.conftest import wait_for

ITEMS = [{"id": f"item{i}", "features": {"topic": f"t{i}", "length": 1 + i % 3}}
         for i in range(5)]
TASTE = {"alice": "item2", "bob": "item4"}


def test_learns_a_hidden_preference_over_http(client: Client) -> None:
    rng = random.Random(3)
    hits = []
    for step in range(400):
        user = rng.choice(list(TASTE))
        r = client.rank({"user": user}, ITEMS, event_id=f"learn-{step}")
        assert r["ranking"][0]["id"] == r["chosen"]
        assert abs(sum(item["probability"] for item in r["ranking"]) - 1) < 1e-9
        liked = r["chosen"] == TASTE[user]
        click = rng.random() < (0.9 if liked else 0.1)
        client.reward(r["event_id"], 1.0 if click else 0.0)
        hits.append(liked)
    assert sum(hits[-100:]) >= 70, f"preferred item chosen {sum(hits[-100:])}/100 at the end"


def test_same_event_id_is_refused_twice(client: Client) -> None:
    client.rank({"user": "x"}, ITEMS, event_id="dup-rank")
    with pytest.raises(APIError) as err:
        client.rank({"user": "x"}, ITEMS, event_id="dup-rank")
    assert err.value.status == 409


def test_batch_rank_decides_each_request_and_refuses_bad_items_in_place(
        client: Client, service: Service) -> None:
    """Many decisions per call: each good item is ranked and stored like a single rank (its
    reward is accepted and logged), a bad or duplicate item gets its own 4xx in its place,
    and every answer has exactly the documented RankResponse shape."""
    good = [{"context": {"user": f"u{i}"}, "actions": ITEMS, "event_id": f"batch-{i}"}
            for i in range(5)]
    items = [*good[:2], {"context": {}, "actions": []}, good[2],
             {**good[3], "event_id": "batch-1"}, *good[3:], {"context": {}, "actions": ITEMS,
                                                            "colour": "red"},
             {"actions": [ITEMS[0], {"id": " "}]}]
    results = client.rank_batch(items)
    assert [r.get("status") for r in results] == [None, None, 422, None, 409, None, None, 422,
                                                  422]
    assert "`actions[1].id` must be a non-empty string" in str(results[-1]["detail"])
    ranked = [r for r in results if "status" not in r]
    assert [r["event_id"] for r in ranked] == [f"batch-{i}" for i in range(5)]
    single = client.rank({"user": "solo"}, ITEMS)
    for r in [*ranked, single]:
        assert RankResponse.model_validate(r).model_dump(mode="json") == r
        assert abs(sum(item["probability"] for item in r["ranking"]) - 1) < 1e-9
    outcome = client.events([{"event_id": r["event_id"], "reward": 1.0} for r in ranked])
    assert outcome["accepted"] == 5
    for r in ranked:
        (entry,) = log_entries(service.settings.redis_url, r["event_id"])
        assert entry["chosen"] == r["chosen"] and entry["reward"] == 1.0
        assert entry["actions"] == ITEMS
    with pytest.raises(APIError) as err:
        client.rank_batch([{"context": {}, "actions": ITEMS[:1]}] *
                          (service.settings.max_batch + 1))
    assert err.value.status == 413


def log_entries(url: str, event_id: str) -> list[dict]:
    return [r for r in iter_log(redis.Redis.from_url(url)) if r["event_id"] == event_id]


def test_duplicate_reward_is_learned_once(client: Client, service: Service) -> None:
    r = client.rank({"user": "carol"}, ITEMS)
    answer = client.reward(r["event_id"], 1.0)
    assert answer == {"event_id": r["event_id"], "status": "accepted", "reward": 1.0}
    assert RewardResponse.model_validate(answer).model_dump(mode="json") == answer
    with pytest.raises(APIError) as err:
        client.reward(r["event_id"], 1.0)
    assert err.value.status == 409
    entries = log_entries(service.settings.redis_url, r["event_id"])
    assert len(entries) == 1 and entries[0]["reward"] == 1.0
    assert entries[0]["chosen"] == r["chosen"] and entries[0]["probability"] > 0


def test_replicas_log_their_messages_but_no_line_per_request(client: Client) -> None:
    """Serve's access log wrote a line per request (and, buffered, stalled the replica
    ~25 ms every 1,000 requests): the replicas keep their log for real messages only."""
    import ray

    for i in range(5):
        client.rank({"user": f"log-{i}"}, ITEMS)
    assert client.stats()
    serve_logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    replica_logs = sorted(serve_logs.glob("replica_raybandit_Ingress_*.log"))
    assert replica_logs, sorted(serve_logs.iterdir())
    text = "".join(path.read_text() for path in replica_logs)
    # written as it happens (not held in a buffer), so an access line would be there by now
    assert "Started initializing replica" in text, text
    assert "/v1/rank" not in text and "/v1/stats" not in text, text[-2000:]


def test_unknown_event_is_404(client: Client) -> None:
    with pytest.raises(APIError) as err:
        client.reward("never-ranked", type="click")
    assert err.value.status == 404


def test_unrewarded_decision_is_learned_with_the_default_reward(client: Client,
                                                                service: Service) -> None:
    r = client.rank({"user": "dave"}, ITEMS)
    before = client.stats()["policies"][0]["learned"]
    entries = wait_for(lambda: log_entries(service.settings.redis_url, r["event_id"]),
                       timeout=service.settings.reward_wait_seconds + 5)
    assert entries[0]["reward"] == service.settings.default_reward
    assert client.stats()["policies"][0]["learned"] > before
    with pytest.raises(APIError) as err:  # too late: it was learned without a reward
        client.reward(r["event_id"], 1.0)
    assert err.value.status == 404 and "expired" in err.value.detail


def test_typed_interactions_and_batch_events(client: Client, service: Service) -> None:
    a, b, c = (client.rank({"user": "erin"}, ITEMS) for _ in range(3))
    result = client.events([
        {"event_id": a["event_id"], "type": "rating", "value": 5},
        {"event_id": b["event_id"], "type": "frown"},
        {"event_id": "nope", "type": "click"},
        {"event_id": c["event_id"], "type": "like"},
        {"event_id": 7, "reward": 1.0},
    ])
    assert [item["status"] for item in result["results"]] == [202, 422, 404, 202, 422]
    assert result["accepted"] == 2
    # a bad item's validation errors are data, as in /v1/rank/batch (not a Python repr)
    frown, number = result["results"][1]["detail"], result["results"][4]["detail"]
    assert [(e["loc"], e["type"]) for e in frown] == [(["type"], "literal_error")], frown
    assert [(e["loc"], e["type"]) for e in number] == [(["event_id"], "string_type")], number
    assert EventsResponse.model_validate(result).model_dump(mode="json") == result
    assert [item["event_id"] for item in result["results"]] == [
        a["event_id"], b["event_id"], "nope", c["event_id"], None]
    assert log_entries(service.settings.redis_url, a["event_id"])[0]["reward"] == 1.0


def test_deferred_decisions_are_learned_only_once_activated(client: Client) -> None:
    r = client.rank({"user": "frank"}, ITEMS, deferred=True)
    with pytest.raises(APIError) as err:
        client.reward(r["event_id"], 1.0)
    assert err.value.status == 409
    assert client.activate(r["event_id"])["status"] == "activated"
    assert client.reward(r["event_id"], 1.0)["status"] == "accepted"


def test_both_replicas_serve_the_updated_model(service: Service, client: Client) -> None:
    import httpx

    published = int(redis.Redis.from_url(service.settings.redis_url).hget(
        "rb:model:vw:squarecb", "version") or 0)
    assert published > 0

    def replicas_current() -> bool:
        seen: dict[str, int] = {}
        for _ in range(40):
            response = httpx.post(f"{service.settings.url}/v1/rank",
                                  json={"context": {}, "actions": ITEMS})
            seen[response.headers["x-raybandit-replica"]] = response.json()["model_version"]
        return len(seen) == 2 and all(v >= published for v in seen.values())

    wait_for(replicas_current, timeout=10)


def test_user_history_personalizes_a_bare_user_id(client: Client) -> None:
    # Two users who send nothing but their id; each only likes "their" item. Only the
    # server-side history features (recent items) can tell them apart.
    items = [{"id": name, "features": {}} for name in ("hx", "hy", "hz")]
    favourite = {"uh1": "hx", "uh2": "hy"}
    rng = random.Random(5)
    for user, item in favourite.items():  # a first like, so that history exists
        r = client.rank({}, [{"id": item, "features": {}}], user_id=user)
        client.reward(r["event_id"], type="like", action_id=item)
    for _ in range(300):
        user = rng.choice(list(favourite))
        r = client.rank({}, items, user_id=user)
        liked = r["chosen"] == favourite[user]
        client.reward(r["event_id"], type="like" if liked else "dismiss",
                      action_id=r["chosen"] if liked else None)
    time.sleep(0.5)
    # the policy's preferred item (highest probability), not the sampled `chosen`, which
    # still explores now and then
    preferred = {
        user: max(client.rank({}, items, user_id=user)["ranking"],
                  key=lambda item: item["probability"])["id"]
        for user in favourite
    }
    assert preferred == favourite


def test_restart_resumes_the_same_model(service: Service, service_settings) -> None:
    store = redis.Redis.from_url(service_settings.redis_url)
    # let earlier tests' decisions finish their wait so the model stops changing
    wait_for(lambda: store.zcard("rb:deadlines") == 0, timeout=15)
    time.sleep(0.5)
    # deferred probes are never learned, so asking them changes nothing
    probes = [(f"probe-{i}", {"user": random.Random(i).choice(list(TASTE))}) for i in range(20)]

    def rankings() -> list:
        with Client(service.settings.url) as api:
            out = [api.rank(ctx, ITEMS, event_id=eid, deferred=True) for eid, ctx in probes]
        for event_id, _ in probes:  # free the ids so the same probes can be asked again
            store.delete(f"rb:d:{event_id}")
        return [(r["chosen"], r["ranking"], r["model_version"]) for r in out]

    before = rankings()
    version = before[0][2]
    assert version > 0 and all(b[2] == version for b in before)
    service.stop()
    assert int(store.hget("rb:model:vw:squarecb", "version")) == version
    service.start()
    after = rankings()
    assert after == before


def test_export_log_writes_the_contract_format(service: Service, tmp_path) -> None:
    import subprocess
    import sys

    out = tmp_path / "log.jsonl"
    done = subprocess.run([sys.executable, "-m", "raybandit.cli", "export-log", str(out),
                           "--redis-url", service.settings.redis_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 400
    assert set(lines[0]) == {"event_id", "timestamp", "context", "actions", "chosen",
                             "probability", "reward", "policy"}
    assert all(0 < line["probability"] <= 1 for line in lines)
