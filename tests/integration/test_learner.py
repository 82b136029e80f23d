"""The learner loop against a real Redis server: exactly-once resume and logging-only mode."""

from __future__ import annotations

import json
import time

import pytest
import redis

from serve.learner import LearnerLoop
from serve.redis_server import EmbeddedRedis
from serve.settings import Settings

ACTIONS = [{"id": "a", "features": {"t": 1}}, {"id": "b", "features": {"t": 2}}]


@pytest.fixture()
def fresh_redis(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def log_decisions(client: redis.Redis, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        decision = {"event_id": f"e{i}", "timestamp": "2026-11-24T00:00:00Z",
                    "context": {"u": i % 2}, "actions": ACTIONS, "chosen": "b",
                    "probability": 0.5, "policy": "vw:epsilon"}
        client.xadd("rb:log", {"d": json.dumps(decision), "r": "1.0", "s": "rewarded"})


def test_restart_resumes_from_the_checkpoint_exactly_once(fresh_redis) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    settings = Settings(redis_url=fresh_redis.url, policy="vw:epsilon", publish_interval_ms=10)
    log_decisions(client, 30)
    first = LearnerLoop(settings, "vw:epsilon")
    assert first.step(block_ms=10) == 30
    first.publish()
    log_decisions(client, 20, start=30)  # logged after the checkpoint, never learned by `first`
    second = LearnerLoop(settings, "vw:epsilon")  # as if `first` had died here
    assert second.policy.n_updates == 30
    assert second.step(block_ms=10) == 20  # only what the checkpoint did not contain
    assert second.step(block_ms=10) == 0
    assert second.policy.n_updates == 50 == client.xlen("rb:log")


def test_logging_only_mode_learns_nothing(fresh_redis) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    settings = Settings(redis_url=fresh_redis.url, policy="vw:epsilon",
                        learning_mode="logging-only")
    log_decisions(client, 10)
    loop = LearnerLoop(settings, "vw:epsilon")
    assert loop.step(block_ms=10) == 0
    assert loop.policy.n_updates == 0 and loop.log_id != "0-0"


def test_a_bad_log_entry_is_skipped_not_fatal(fresh_redis) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    settings = Settings(redis_url=fresh_redis.url, policy="vw:epsilon")
    bad = {"event_id": "bad", "context": {}, "actions": ACTIONS, "chosen": "zzz",
           "probability": 0.5, "policy": "vw:epsilon"}
    client.xadd("rb:log", {"d": json.dumps(bad), "r": "1.0", "s": "rewarded"})
    log_decisions(client, 3)
    loop = LearnerLoop(settings, "vw:epsilon")
    assert loop.step(block_ms=10) == 3 and loop.errors == 1


def test_log_retention_drops_old_entries_only_once_every_arm_has_learned_them(
        fresh_redis) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    arms = {"vw:epsilon": 1.0, "uniform": 1.0}
    settings = Settings(redis_url=fresh_redis.url, arms=arms, log_retention_days=1)
    later = time.time() + 2 * 86400  # when everything logged now is past its retention
    log_decisions(client, 30)
    epsilon, uniform = LearnerLoop(settings, "vw:epsilon"), LearnerLoop(settings, "uniform")
    assert epsilon.step(block_ms=10) == 30
    epsilon.publish()
    assert epsilon.trim_log(now=later) == 0  # the uniform arm has not learned them yet
    uniform.step(block_ms=10)
    uniform.publish()
    assert uniform.trim_log(now=time.time()) == 0  # learned by both, but not a day old
    log_decisions(client, 5, start=30)  # logged after both checkpoints
    assert uniform.trim_log(now=later) == 30 and client.xlen("rb:log") == 5
    # a learner restarted now resumes with exactly the entries it had not learned
    assert LearnerLoop(settings, "vw:epsilon").step(block_ms=10) == 5
    assert Settings(redis_url=fresh_redis.url).log_retention_days is None  # kept by default
    unlimited = LearnerLoop(Settings(redis_url=fresh_redis.url, arms=arms), "uniform")
    assert unlimited.trim_log(now=later) == 0


def test_logging_only_mode_applies_the_retention_by_age_alone(fresh_redis) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    settings = Settings(redis_url=fresh_redis.url, policy="vw:epsilon",
                        learning_mode="logging-only", log_retention_days=1)
    log_decisions(client, 10)
    loop = LearnerLoop(settings, "vw:epsilon")
    assert loop.trim_log(now=time.time()) == 0
    assert loop.trim_log(now=time.time() + 2 * 86400) == 10
