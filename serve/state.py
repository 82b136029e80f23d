"""Everything the service keeps in Redis, in one place.

Keys (``{p}`` is the policy spec, ``{e}`` an event id, ``{u}`` a user id):

=========================  ======  =============================================================
``rb:d:{e}``               hash    a decision awaiting (or just given) its reward: ``decision``
                                   (its JSON), ``status`` (deferred, pending, done, expired),
                                   ``reward``, ``n`` (rewards of ``chosen`` received), ``user``,
                                   ``chosen``; expires ``reward_wait_seconds`` +
                                   ``RETAIN_SECONDS`` after it is made, so late duplicates are
                                   still recognised
``rb:deadlines``           zset    pending event ids scored by the time their wait ends
``rb:log``                 stream  the decision log: one entry per final decision, fields ``d``
                                   (decision JSON), ``r`` (reward), ``s`` (rewarded/default);
                                   the learners read it in order, ``export-log`` pages through it
``rb:model:{p}``           hash    the latest published model: ``bytes``, ``version`` (updates
                                   learned), ``log_id`` (last log entry in it); this is also the
                                   checkpoint a restarted learner resumes from; in apprentice
                                   mode also ``apprentice`` (comparison state), ``reward_model``,
                                   ``apprentice_summary`` and ``graduated`` (0/1)
``rb:stats:{p}``           hash    ``decisions``, ``rewards`` (rewards of chosen actions),
                                   ``learned``, ``reward_sum``, ``reward_sq`` (of final rewards)
``rb:items:views`` /       zset    per item: times chosen / times rewarded positively
``rb:items:clicks``
``rb:u:{u}:recent``        list    the items the user most recently engaged with (positive
                                   reward), newest first
``rb:u:{u}:counts``        hash    the user's interactions by type; both expire
                                   ``log_retention_days`` after the user's last reward, if set
=========================  ======  =============================================================

State changes that must not interleave (making a decision final exactly once, expiring it)
are Lua scripts, so each runs atomically inside Redis.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

RETAIN_SECONDS = 3600
LOG = "rb:log"
DEADLINES = "rb:deadlines"
VIEWS = "rb:items:views"
CLICKS = "rb:items:clicks"
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


def decision_key(event_id: str) -> str:
    return f"rb:d:{event_id}"


def model_key(policy: str) -> str:
    return f"rb:model:{policy}"


def stats_key(policy: str) -> str:
    return f"rb:stats:{policy}"


def recent_key(user: str) -> str:
    return f"rb:u:{user}:recent"


def counts_key(user: str) -> str:
    return f"rb:u:{user}:counts"


# Shared Lua: make decision KEYS[1] final with reward `r` and status `s` ('done'/'expired'),
# append it to the log, count it, and keep the record a while for duplicate detection.
_FINALIZE = """
local function finalize(key, event_id, r, s, retain)
  local policy = redis.call('HGET', key, 'policy')
  redis.call('HSET', key, 'status', s, 'reward', r)
  redis.call('EXPIRE', key, retain)
  redis.call('ZREM', 'rb:deadlines', event_id)
  redis.call('XADD', 'rb:log', '*', 'd', redis.call('HGET', key, 'decision'), 'r', r,
             's', s == 'done' and 'rewarded' or 'default')
  local stats = 'rb:stats:' .. policy
  redis.call('HINCRBY', stats, 'learned', 1)
  redis.call('HINCRBYFLOAT', stats, 'reward_sum', r)
  redis.call('HINCRBYFLOAT', stats, 'reward_sq', tonumber(r) * tonumber(r))
end
"""

# Many decisions in one call. KEYS: one decision key each. ARGV: 8 per decision: event_id,
# decision JSON, policy, chosen, user, deferred (0/1), deadline, ttl. Returns one character
# per decision: '1' stored, '0' the event id was already used. (One call per request instead
# of one per decision: its command packing and reply parsing were ~85 us of the replica's
# time per decision in redis-py.)
RANK_SCRIPT = """
local stored = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 8
  if redis.call('EXISTS', key) == 1 then
    stored[i] = '0'
  else
    local status = ARGV[a + 6] == '1' and 'deferred' or 'pending'
    redis.call('HSET', key, 'decision', ARGV[a + 2], 'status', status, 'policy', ARGV[a + 3],
               'chosen', ARGV[a + 4], 'user', ARGV[a + 5], 'n', 0)
    redis.call('EXPIRE', key, tonumber(ARGV[a + 8]))
    if status == 'pending' then redis.call('ZADD', 'rb:deadlines', ARGV[a + 7], ARGV[a + 1]) end
    redis.call('HINCRBY', 'rb:stats:' .. ARGV[a + 3], 'decisions', 1)
    redis.call('ZINCRBY', 'rb:items:views', 1, ARGV[a + 4])
    stored[i] = '1'
  end
end
return table.concat(stored)
"""

# Many rewards in one call, joined in order. KEYS: one decision key each. ARGV: aggregation,
# history length, retain seconds, user history TTL (0: none), then 4 per reward: event_id,
# reward, kind, action_id.
# Returns the outcomes joined by ',': accepted, unknown, deferred, expired or duplicate.
REWARD_SCRIPT = _FINALIZE + """
local agg, keep, retain, user_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])

local function reward(key, event_id, reward_text, kind, action_id)
  local status = redis.call('HGET', key, 'status')
  if not status then return 'unknown' end
  if status ~= 'pending' then
    if status == 'done' then return 'duplicate' end
    return status
  end
  local r = tonumber(reward_text)
  local chosen = redis.call('HGET', key, 'chosen')
  local item = action_id
  if item == '' then item = chosen end
  -- The decision learns what its chosen action earned. An interaction with another item of
  -- the list is that item's (popularity, the user's history): credited to the chosen one it
  -- taught the model that the top item was liked when the user liked a different one.
  if item == chosen then
    local n = redis.call('HINCRBY', key, 'n', 1)
    redis.call('HINCRBY', 'rb:stats:' .. redis.call('HGET', key, 'policy'), 'rewards', 1)
    if agg == 'first' then
      finalize(key, event_id, reward_text, 'done', retain)
    elseif agg == 'sum' then
      redis.call('HINCRBYFLOAT', key, 'reward', r)
    else
      local current = tonumber(redis.call('HGET', key, 'reward'))
      if n == 1 or current == nil or r > current then redis.call('HSET', key, 'reward', r) end
    end
  end
  if r > 0 then redis.call('ZINCRBY', 'rb:items:clicks', 1, item) end
  local user = redis.call('HGET', key, 'user')
  if user and user ~= '' and keep > 0 then
    local recent, counts = 'rb:u:' .. user .. ':recent', 'rb:u:' .. user .. ':counts'
    if r > 0 then
      redis.call('LPUSH', recent, item)
      redis.call('LTRIM', recent, 0, keep - 1)
    end
    redis.call('HINCRBY', counts, kind, 1)
    if user_ttl > 0 then  -- a user's history lasts the retention period after their last reward
      redis.call('EXPIRE', recent, user_ttl)
      redis.call('EXPIRE', counts, user_ttl)
    end
  end
  return 'accepted'
end

local outcomes = {}
for i, key in ipairs(KEYS) do
  local a = 4 + (i - 1) * 4
  outcomes[i] = reward(key, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
return table.concat(outcomes, ',')
"""

# ARGV: now, default reward, limit, retain. Finalizes pending decisions whose wait is over:
# with the aggregated reward if any arrived (sum/max), else with the default reward.
EXPIRE_SCRIPT = _FINALIZE + """
local ids = redis.call('ZRANGEBYSCORE', 'rb:deadlines', '-inf', ARGV[1], 'LIMIT', 0,
                       tonumber(ARGV[3]))
for _, event_id in ipairs(ids) do
  local key = 'rb:d:' .. event_id
  local status = redis.call('HGET', key, 'status')
  if status == 'pending' then
    local n = tonumber(redis.call('HGET', key, 'n') or '0')
    if n > 0 then
      finalize(key, event_id, redis.call('HGET', key, 'reward'), 'done', tonumber(ARGV[4]))
    else
      finalize(key, event_id, ARGV[2], 'expired', tonumber(ARGV[4]))
    end
  else
    redis.call('ZREM', 'rb:deadlines', event_id)
  end
end
return #ids
"""

# KEYS[1] decision key. ARGV: event_id, deadline. Returns activated/already/unknown.
ACTIVATE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'unknown' end
if status ~= 'deferred' then return 'already' end
redis.call('HSET', KEYS[1], 'status', 'pending')
redis.call('ZADD', 'rb:deadlines', ARGV[2], ARGV[1])
return 'activated'
"""


def parse_log_entry(fields: dict[Any, Any]) -> dict[str, Any]:
    """A log stream entry as the decision-log contract's record."""
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    get = {text(k): v for k, v in fields.items()}
    record = orjson.loads(get["d"])
    record["reward"] = float(text(get["r"]))
    return record


@dataclass(frozen=True)
class Decision:
    """A decision as the rank script stores it."""

    event_id: str
    decision_json: bytes
    policy: str
    chosen: str
    user: str
    deferred: bool
    deadline: float
    ttl: int


class GroupCommit(Generic[Item, Outcome]):
    """Concurrent requests' items go to Redis together. A caller that finds no call in flight
    sends its items at once; items that arrive while a call is in flight wait for it, then
    go, all of them, in one call. Each caller gets the outcomes of its own items, or the
    error of the call that carried them.

    Per call, redis-py spends ~150-200 us of the replica's CPU, and Redis runs the script and
    an fsync. Ranking one decision per request at 8 concurrent (six alternations on one
    service), grouping cut Redis's CPU per decision by ~30% in every alternation; the
    replica's fell ~6% in the median, within this machine's noise.
    A caller with more than ``largest`` items (a batch request) sends them alone, at once:
    its call is shared by many items already, and grouping batch ranks (100 decisions each,
    4 concurrent) lowered their throughput by ~16% (medians of four alternations)."""

    def __init__(self, send: Callable[[list[Item]], Awaitable[list[Outcome]]], *,
                 largest: int = 10) -> None:
        self._send = send
        self._largest = largest
        self._waiting: list[tuple[list[Item], asyncio.Future[list[Outcome]]]] = []
        self._busy = False
        self._sender: asyncio.Task[None] | None = None  # asyncio keeps tasks weakly

    async def __call__(self, items: list[Item]) -> list[Outcome]:
        if len(items) > self._largest:
            return await self._send(items)
        if self._busy:
            done: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
            self._waiting.append((items, done))
            return await done
        self._busy = True
        try:
            return await self._send(items)
        finally:
            if self._waiting:
                self._sender = asyncio.get_running_loop().create_task(self._send_waiting())
            else:
                self._busy = False

    async def _send_waiting(self) -> None:
        group: list[tuple[list[Item], asyncio.Future[list[Outcome]]]] = []
        try:
            while self._waiting:
                # a request cancelled while it waited (its client went away) stores nothing
                group = [(items, done) for items, done in self._waiting if not done.done()]
                self._waiting = []
                if not group:
                    continue
                try:
                    outcomes = await self._send([item for items, _ in group for item in items])
                except Exception as exc:
                    for _, done in group:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    start = 0
                    for items, done in group:
                        if not done.done():  # cancelled while its call was in flight
                            done.set_result(outcomes[start:start + len(items)])
                        start += len(items)
                group = []
        finally:
            self._busy = False
            # Only when this task itself is cancelled (the replica stopping): no caller may
            # wait forever.
            for _, done in group + self._waiting:
                done.cancel()
            self._waiting = []


class Store:
    """Async access to the state above, for the ingress replicas."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        # Fail fast: a request must get a 503 in about a second, not hang, while Redis is down.
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=1.0, retry_on_timeout=False,
            health_check_interval=10,
        )
        self._rank = self.redis.register_script(RANK_SCRIPT)
        self._decisions = GroupCommit(self._store_decisions)
        self._reward = self.redis.register_script(REWARD_SCRIPT)
        self._reward_groups: dict[tuple[str, int, int], GroupCommit[Any, str]] = {}
        self._activate = self.redis.register_script(ACTIVATE_SCRIPT)

    async def record_decisions(self, decisions: list[Decision]) -> list[bool]:
        """Store new decisions, durably; False where the event id is taken. Decisions of
        concurrent requests share one script call (see ``GroupCommit``)."""
        if not decisions:
            return []
        return await self._decisions(decisions)

    async def _store_decisions(self, decisions: list[Decision]) -> list[bool]:
        """One script call (one round trip, one AOF write). (redis-py's script object runs it
        by SHA and loads it again if Redis forgot it.)"""
        stored = await self._rank(
            keys=[decision_key(d.event_id) for d in decisions],
            args=[value for d in decisions
                  for value in (d.event_id, d.decision_json, d.policy, d.chosen, d.user,
                                int(d.deferred), d.deadline, d.ttl)])
        return [flag == "1" for flag in _text(stored)]

    async def rewards(self, rewards: list[tuple[str, float, str, str]], *, aggregation: str,
                      history_length: int, history_seconds: int = 0) -> list[str]:
        """Join (event id, reward, kind, action id) rewards, in order; the outcome of each:
        accepted, unknown, deferred, expired or duplicate. Rewards of concurrent requests
        share one script call (see ``GroupCommit``)."""
        if not rewards:
            return []
        options = (aggregation, history_length, history_seconds)
        group = self._reward_groups.get(options)
        if group is None:
            group = self._reward_groups[options] = GroupCommit(
                functools.partial(self._join_rewards, *options))
        return await group(rewards)

    async def _join_rewards(self, aggregation: str, history_length: int, history_seconds: int,
                            rewards: list[tuple[str, float, str, str]]) -> list[str]:
        """One script call, as ``_store_decisions``."""
        outcomes = await self._reward(
            keys=[decision_key(event_id) for event_id, *_ in rewards],
            args=[aggregation, history_length, RETAIN_SECONDS, history_seconds,
                  *(value for event_id, reward, kind, action_id in rewards
                    for value in (event_id, repr(float(reward)), kind, action_id))])
        return _text(outcomes).split(",")

    async def activate(self, event_id: str, deadline: float) -> str:
        return _text(await self._activate(keys=[decision_key(event_id)], args=[event_id, deadline]))

    async def user_history(self, user: str, length: int) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(recent_key(user), 0, length - 1)
        pipe.hgetall(counts_key(user))
        recent, counts = await pipe.execute()
        # log-scaled counts stay in a range linear learners handle at any account age
        history: dict[str, Any] = {f"n_{_text(k)}": round(math.log1p(int(v)), 4)
                                   for k, v in counts.items()}
        if recent:
            history["recent"] = list(dict.fromkeys(_text(item) for item in recent))
        return history

    async def stats(self, policies: list[str]) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        for policy in policies:
            pipe.hgetall(stats_key(policy))
            pipe.hmget(model_key(policy), ["version", "apprentice_summary"])
        pipe.zcard(DEADLINES)
        pipe.zrevrange(CLICKS, 0, 9, withscores=True)
        pipe.zrevrange(VIEWS, 0, 9, withscores=True)
        pipe.xlen(LOG)
        replies = await pipe.execute()
        per_policy = {}
        for i, policy in enumerate(policies):
            raw, (version, apprentice) = replies[2 * i], replies[2 * i + 1]
            per_policy[policy] = ({_text(k): float(v) for k, v in raw.items()},
                                  int(version or 0), orjson.loads(apprentice or b"null"))
        pending, clicks, views, log_length = replies[2 * len(policies):]
        return {"policies": per_policy, "pending": int(pending), "log_length": int(log_length),
                "clicks": [(_text(i), int(c)) for i, c in clicks],
                "views": [(_text(i), int(c)) for i, c in views]}

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
