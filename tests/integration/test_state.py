"""The Redis state layer against a real Redis server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from serve.redis_server import DataDirInUse, EmbeddedRedis, durability_warnings
from serve.settings import Settings
from serve.state import Decision, GroupCommit, Store
from tests.integration.test_cli_serve import pid_alive


@pytest.fixture()
def fresh_redis(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def decision(i: int) -> Decision:
    return Decision(event_id=f"e{i}", decision_json=b'{"event_id": "e%d"}' % i, policy="p",
                    chosen="a", user="", deferred=False, deadline=time.time() + 60, ttl=600)


def test_scripts_run_again_after_redis_forgot_them(fresh_redis) -> None:
    """Decisions and rewards run as one script call per request, by SHA. A Redis that lost
    its scripts (restarted, SCRIPT FLUSH) is given them again and the refused call, which
    changed nothing, runs once more: every decision stored once, every reward joined once
    and in order, nothing counted twice."""
    async def scenario() -> None:
        store = Store(fresh_redis.url)
        try:
            # the very first call: this Redis has never seen the script
            assert await store.record_decisions([decision(0), decision(1)]) == [True, True]
            await store.redis.script_flush()
            assert await store.record_decisions([decision(1), decision(2)]) == [False, True]
            # an id repeated within one call is stored once
            assert await store.record_decisions([decision(3), decision(3)]) == [True, False]
            await store.redis.script_flush()
            outcomes = await store.rewards(
                [("e0", 1.0, "reward", ""), ("e0", 0.5, "reward", ""), ("e9", 1.0, "click", "")],
                aggregation="first", history_length=0)
            assert outcomes == ["accepted", "duplicate", "unknown"]
            stats = await store.redis.hgetall("rb:stats:p")
            assert stats[b"decisions"] == b"4" and stats[b"rewards"] == b"1"
            assert await store.redis.xlen("rb:log") == 1
            assert await store.redis.zcard("rb:deadlines") == 3  # e1, e2, e3 still wait
        finally:
            await store.close()

    asyncio.run(scenario())


def test_concurrent_requests_share_script_calls_and_get_their_own_outcomes(fresh_redis) -> None:
    """Twenty small requests at once: the first one's call goes at once, the other nineteen
    wait for it and then go together, in arrival order, in one call; a batch goes alone. Each
    request gets the outcomes of its own decisions and rewards, a repeated event id
    included."""
    async def evalsha_calls(store: Store) -> int:
        return int((await store.redis.info("commandstats"))["cmdstat_evalsha"]["calls"])

    async def scenario() -> None:
        store = Store(fresh_redis.url)
        try:
            assert await store.record_decisions([decision(0)]) == [True]
            await store.rewards([("nobody", 1.0, "reward", "")], aggregation="first",
                                history_length=0)  # Redis now knows both scripts
            await store.redis.config_resetstat()
            batch = [decision(i) for i in range(100, 111)]  # over ``largest``: sent alone
            stored = await asyncio.gather(*(
                store.record_decisions([decision(2 * i + 1), decision(2 * i + 2)])
                for i in range(19)), store.record_decisions([decision(7), decision(0)]),
                store.record_decisions(batch))
            assert stored == [[True, True]] * 19 + [[False, False], [True] * 11]
            assert await evalsha_calls(store) == 3

            await store.redis.config_resetstat()
            joined = await asyncio.gather(*(
                store.rewards([(f"e{i}", 1.0, "click", "")], aggregation="first",
                              history_length=0)
                for i in [1, 2, 3, 2, 99, 4]))
            assert joined == [["accepted"], ["accepted"], ["accepted"], ["duplicate"],
                              ["unknown"], ["accepted"]]
            assert await evalsha_calls(store) == 2
            assert await store.redis.xlen("rb:log") == 4
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_failed_group_call_fails_each_of_its_requests_and_the_next_group_still_goes() -> None:
    """The logic of ``GroupCommit`` alone, with a send function that fails on one item; a
    request cancelled while it waits is left out of the call."""
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def send(items: list[int]) -> list[int]:
        calls.append(items)
        await release.wait()
        if 13 in items:
            raise RuntimeError("Redis went away")
        return [10 * item for item in items]

    async def scenario() -> None:
        group = GroupCommit(send)
        first = asyncio.create_task(group([1]))
        await asyncio.sleep(0)  # the first call is in flight; these wait for it
        waiting = [asyncio.create_task(group(items)) for items in ([2], [13, 3], [4])]
        cancelled = asyncio.create_task(group([5]))
        await asyncio.sleep(0)
        cancelled.cancel()  # its client went away: not sent, and the others not disturbed
        release.set()
        assert await first == [10]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert calls == [[1], [2, 13, 3, 4]]
        assert await group([6, 7]) == [60, 70]  # not stuck after the failure
        assert calls[-1] == [6, 7]

    asyncio.run(asyncio.wait_for(scenario(), 10))  # a caller left waiting fails, not hangs


def test_a_reward_for_another_item_of_the_list_is_not_learned_as_the_chosen_ones(
        fresh_redis) -> None:
    """The user liked "b" of a list whose top (chosen) item was "a": "b" gets the like (its
    popularity, the user's history), and the decision still waits for what "a" earns."""
    async def scenario() -> None:
        store = Store(fresh_redis.url)
        try:
            shown = Decision(event_id="e1", decision_json=b'{"event_id": "e1"}', policy="p",
                             chosen="a", user="u1", deferred=False,
                             deadline=time.time() + 60, ttl=600)
            assert await store.record_decisions([shown]) == [True]
            options = {"aggregation": "first", "history_length": 20}
            assert await store.rewards([("e1", 1.0, "like", "b")], **options) == ["accepted"]
            assert await store.redis.hget("rb:d:e1", "status") == b"pending"
            assert await store.redis.xlen("rb:log") == 0  # nothing learned for "a"
            assert await store.user_history("u1", 20) == {"n_like": 0.6931, "recent": ["b"]}
            assert await store.redis.zscore("rb:items:clicks", "b") == 1.0
            # what "a" itself earned is learned, once
            assert await store.rewards([("e1", 0.5, "rating", "a")], **options) == ["accepted"]
            assert await store.rewards([("e1", 1.0, "click", "")], **options) == ["duplicate"]
            entries = await store.redis.xrange("rb:log")
            assert len(entries) == 1 and float(entries[0][1][b"r"]) == 0.5
            assert (await store.redis.hgetall("rb:stats:p"))[b"rewards"] == b"1"
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_users_history_expires_with_the_retention_period_after_their_last_reward(
        fresh_redis) -> None:
    async def scenario() -> None:
        store = Store(fresh_redis.url)
        try:
            for i, user in enumerate(["kept", "retained"]):
                await store.record_decisions([
                    Decision(event_id=f"e{i}", decision_json=b"{}", policy="p", chosen="a",
                             user=user, deferred=False, deadline=time.time() + 60, ttl=600)])
            assert await store.rewards([("e0", 1.0, "click", "")], aggregation="first",
                                       history_length=20) == ["accepted"]
            assert await store.rewards([("e1", 1.0, "click", "")], aggregation="first",
                                       history_length=20, history_seconds=3600) == ["accepted"]
            assert await store.redis.ttl("rb:u:kept:recent") == -1  # no retention: for ever
            assert await store.redis.ttl("rb:u:kept:counts") == -1
            for key in ("rb:u:retained:recent", "rb:u:retained:counts"):
                assert 3590 <= await store.redis.ttl(key) <= 3600
            assert await store.user_history("retained", 20) == {"n_click": 0.6931,
                                                                 "recent": ["a"]}
        finally:
            await store.close()

    asyncio.run(scenario())
    assert Settings(log_retention_days=0.5).retention_seconds == 43200
    assert Settings().retention_seconds == 0


LEAVE_REDIS_RUNNING = """
import os, sys
import redis
from serve.redis_server import EmbeddedRedis
server = EmbeddedRedis(sys.argv[1]).start()
redis.Redis.from_url(server.url).set("acknowledged", "1")
print(server.process.pid, flush=True)
os._exit(0)  # as a killed `raybandit serve` would: no stop, the server lives on
"""


def test_one_embedded_redis_per_data_folder(tmp_path) -> None:
    """Two servers appending to one AOF would corrupt it: a second start on a folder whose
    owner still runs fails clearly; a server its owner left behind is stopped and replaced,
    its data kept."""
    folder = tmp_path / "redis"
    with EmbeddedRedis(folder) as first:
        first_url = first.url
        with pytest.raises(DataDirInUse, match="in use by another raybandit process"):
            EmbeddedRedis(folder).start()
        assert redis.Redis.from_url(first_url).ping()  # the first one is untouched
    with EmbeddedRedis(folder):  # free again once stopped
        pass

    leftover = subprocess.run([sys.executable, "-c", LEAVE_REDIS_RUNNING, str(folder)],
                              capture_output=True, text=True, timeout=60, check=True)
    pid = int(leftover.stdout.split()[0])
    try:
        with EmbeddedRedis(folder) as replacement:
            assert not pid_alive(pid)
            assert redis.Redis.from_url(replacement.url).get("acknowledged") == b"1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_an_external_redis_that_could_lose_acknowledged_rewards_is_named(fresh_redis) -> None:
    assert durability_warnings(fresh_redis.url) == []  # the embedded one's settings
    client = redis.Redis.from_url(fresh_redis.url)
    client.config_set("appendfsync", "everysec")
    client.config_set("maxmemory-policy", "allkeys-lru")
    warnings = durability_warnings(fresh_redis.url)
    assert [w.split(" is ")[0] for w in warnings] == ["appendfsync", "maxmemory-policy"]
    client.config_set("appendonly", "no")
    assert durability_warnings(fresh_redis.url)[0].startswith("appendonly is off")
