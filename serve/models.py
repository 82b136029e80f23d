"""Publishing and following model versions through Redis (``rb:model:{policy}``).

The learner writes the model bytes, its version and the last log entry it contains in one
``HSET`` (so the checkpoint is consistent); ranking replicas poll the version and load new
bytes when it changes, without restarting and without becoming unready.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from learners import Policy, load_policy, make_policy
from learners.evaluation import BaselineComparison
from serve.state import model_key

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    policy: Policy
    version: int
    log_id: str
    # apprentice mode: the comparison with the baseline (state JSON, reward model bytes)
    apprentice: dict[str, Any] | None = None
    reward_model: bytes | None = None


def read_checkpoint(client: Any, spec: str, initial_model: str | None = None,
                    with_apprentice: bool = False) -> Checkpoint:
    """The published model of ``spec``; when none exists yet, the registered
    ``initial_model`` (``models:/NAME@ALIAS``) or else a fresh policy. Only the learner
    needs the apprentice comparison (``with_apprentice``); the replicas, which reload on
    every new version, do not fetch its reward model."""
    fields = ["bytes", "version", "log_id"]
    if with_apprentice:
        fields += ["apprentice", "reward_model"]
    data, version, log_id, *extra = client.hmget(model_key(spec), fields)
    apprentice, reward_model = extra or (None, None)
    if not data:
        policy = make_policy(spec)
        if initial_model:
            # the registry is the one place besides experiments that knows MLflow
            from experiments.registry import load_policy_bytes

            policy.load(load_policy_bytes(initial_model))
            policy.spec = spec
        return Checkpoint(policy, policy.n_updates, "0-0")
    policy = load_policy(data)
    policy.spec = spec
    return Checkpoint(policy, int(version or 0), (log_id or b"0-0").decode(),
                      orjson.loads(apprentice) if apprentice else None, reward_model or None)


def write_checkpoint(client: Any, spec: str, policy: Policy, log_id: str,
                     apprentice: BaselineComparison | None = None) -> int:
    """Publish the model with its log position (and apprentice comparison) in one HSET."""
    version = policy.n_updates
    mapping: dict[str, Any] = {"bytes": policy.save(), "version": version, "log_id": log_id}
    if apprentice is not None:
        state, reward_model = apprentice.save()
        mapping.update(apprentice=orjson.dumps(state), reward_model=reward_model,
                       apprentice_summary=orjson.dumps(apprentice.summary()),
                       graduated=int(apprentice.graduated))
    client.hset(model_key(spec), mapping=mapping)
    return version


class ModelFollower:
    """Keeps the newest published model of one policy in memory (a background thread)."""

    def __init__(self, url: str, spec: str, interval_ms: int) -> None:
        self.spec = spec
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=1.0
        )
        self._interval = interval_ms / 1000.0
        self._stop = threading.Event()
        self.policy: Policy = make_policy(spec)
        self.version = 0
        self.graduated = False  # apprentice mode: the learner found the policy better
        self.loaded = False
        self.refresh()
        self._thread = threading.Thread(target=self._run, name=f"follow-{spec}", daemon=True)
        self._thread.start()

    def refresh(self) -> bool:
        """Load a newer model if one was published; True when the model changed."""
        try:
            version, graduated = self._client.hmget(model_key(self.spec),
                                                    ["version", "graduated"])
            self.loaded = True
            self.graduated = graduated == b"1"
            if version is None or int(version) == self.version:
                return False
            checkpoint = read_checkpoint(self._client, self.spec)
        except redis.RedisError as exc:
            log.warning("cannot refresh model %s: %s", self.spec, exc)
            return False
        # One reference assignment: requests in flight keep the object they started with.
        self.policy, self.version = checkpoint.policy, checkpoint.version
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._client.close()
