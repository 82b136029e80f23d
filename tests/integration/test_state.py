"""The Redis state layer against a real Redis server."""

from __future__ import annotations

import asyncio
import time

import pytest

from serve.redis_server import EmbeddedRedis
from serve.state import Decision, Store


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


def test_the_store_packs_commands_in_c_exactly_as_redis_py_packs_them(fresh_redis) -> None:
    """The store's connections pack with hiredis (redis-py's asyncio client would in Python):
    byte for byte what redis-py sends, for every kind of argument the scripts get."""
    from redis.asyncio import Connection

    store = Store(fresh_redis.url)
    connection = store.redis.connection_pool.make_connection()
    assert isinstance(connection, Connection)
    assert type(connection).pack_command is not Connection.pack_command
    args = ("EVALSHA", "0" * 40, 2, "rb:d:é", b"\x00\xff", 1764000000.123456, -0.5, 1e-07,
            3660, "", "x" * 10_000)
    assert (b"".join(connection.pack_command(*args))
            == b"".join(Connection().pack_command(*args)))

    async def round_trip() -> None:
        try:
            assert await store.record_decisions([decision(1)]) == [True]
            assert await store.redis.hget("rb:d:e1", "decision") == b'{"event_id": "e1"}'
        finally:
            await store.close()

    asyncio.run(round_trip())
