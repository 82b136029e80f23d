"""The learner: the single writer of one policy's model.

It reads the decision log stream (``rb:log``) in order from the last entry its checkpoint
contains, applies each final (decision, reward) example once, finalizes decisions whose
reward wait is over (default reward), and publishes/checkpoints the model. Because the model
and the position in the log are saved together, a learner that dies and restarts resumes
from its checkpoint and re-applies exactly the entries the checkpoint did not yet contain:
every acknowledged reward is learned exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis

from learners import LearnerError, Policy, load_policy, make_policy
from learners.evaluation import BaselineComparison
from learners.types import as_actions, index_of
from serve.models import read_checkpoint, write_checkpoint
from serve.settings import Settings
from serve.state import EXPIRE_SCRIPT, LOG, RETAIN_SECONDS, model_key, parse_log_entry

log = logging.getLogger(__name__)

# How often a learner applies ``log_retention_days`` (exact trimming: one pass over what goes)
TRIM_INTERVAL_SECONDS = 60.0


class LearnerLoop:
    """The learning loop for one policy; runs in a thread of the learner deployment."""

    def __init__(self, settings: Settings, spec: str) -> None:
        self.settings = settings
        self.spec = spec
        self.client: Any = redis.Redis.from_url(settings.redis_url or "", socket_timeout=5.0,
                                           socket_connect_timeout=2.0)
        self._expire = self.client.register_script(EXPIRE_SCRIPT)
        checkpoint = read_checkpoint(self.client, spec, settings.initial_model,
                                     with_apprentice=True)
        self.policy = checkpoint.policy
        self.log_id = checkpoint.log_id
        self.published_version = -1 if settings.initial_model else checkpoint.version
        self.apprentice = self._comparison(checkpoint.apprentice, checkpoint.reward_model)
        self.errors = 0
        self._stop = threading.Event()
        # step() and the admin commands below both change the model: one at a time
        self._lock = threading.Lock()
        self._last_publish = time.monotonic()
        self._last_trim = -TRIM_INTERVAL_SECONDS
        log.info("learner %s resumes at version %d, log id %s", spec, checkpoint.version,
                 self.log_id)

    def step(self, block_ms: int = 100) -> int:
        """Expire due decisions, learn new log entries, publish when due; returns examples."""
        with self._lock:
            return self._step(block_ms)

    def _comparison(self, state: dict[str, Any] | None = None,
                    reward_model: bytes | None = None) -> BaselineComparison | None:
        """Apprentice mode's running comparison with the baseline (resumed or new)."""
        if self.settings.learning_mode != "apprentice":
            return None
        rule = self.settings.graduation
        if state is None:
            return BaselineComparison(rule.min_events, rule.min_lift)
        return BaselineComparison.restore(state, reward_model, rule.min_events, rule.min_lift)

    def replace_model(self, policy: Policy) -> int:
        """Admin import/reset: continue from ``policy`` and from the current end of the log
        (what the replaced model had not yet learned is not applied to the new one)."""
        with self._lock:
            newest = self.client.xrevrange(LOG, count=1)
            self._step(0)  # apply what was already logged to the outgoing model first
            self.policy = policy
            self.apprentice = self._comparison()  # a new model has to prove itself again
            if newest:
                self.log_id = max(self.log_id, newest[0][0].decode(), key=_stream_order)
            self.publish()
            return self.published_version

    def _step(self, block_ms: int) -> int:
        self._expire(args=[time.time(), self.settings.default_reward, 1000, RETAIN_SECONDS])
        reply = self.client.xread({LOG: self.log_id}, count=500, block=block_ms or None)
        learned = 0
        for _, entries in reply or []:
            for entry_id, fields in entries:
                learned += self._apply(parse_log_entry(fields))
                self.log_id = entry_id.decode()
        now = time.monotonic()
        if (self.policy.n_updates != self.published_version or learned) and (
            now - self._last_publish >= self.settings.publish_interval_ms / 1000.0
        ):
            self.publish()
        if now - self._last_trim >= TRIM_INTERVAL_SECONDS:
            self._last_trim = now
            self.trim_log()
        return learned

    def trim_log(self, now: float | None = None) -> int:
        """Drop log entries older than ``log_retention_days``, but only those every arm's
        checkpoint has learned: a learner that is down or behind loses nothing it has yet to
        learn. Returns the number of entries dropped."""
        seconds = self.settings.retention_seconds
        if not seconds:
            return 0
        cutoff = f"{int(((now or time.time()) - seconds) * 1000)}-0"
        if self.settings.learning_mode != "logging-only":  # there, nothing waits to be learned
            # an arm's checkpoint holds every entry up to and including its log_id
            after_learned = [_successor((self.client.hget(model_key(spec), "log_id")
                                         or b"0-0").decode())
                             for spec in self.settings.arm_shares]
            cutoff = min([cutoff, *after_learned], key=_stream_order)
        return int(self.client.xtrim(LOG, minid=cutoff, approximate=False))

    def _apply(self, record: dict[str, Any]) -> int:
        if self.settings.learning_mode == "logging-only":
            return 0
        # Every arm learns from every arm's decisions: the logged probability makes them
        # off-policy examples (VW weights them by it), so a small arm still learns.
        if record.get("policy") != self.spec and not self.settings.learn_from_all_arms:
            return 0
        try:
            if record.get("mode") == "apprentice":
                self._compare_with_baseline(record)
            self.policy.learn(record["context"], record["actions"], record["chosen"],
                              record["probability"], record["reward"])
        except LearnerError as exc:  # a bad example must not stop learning for everyone
            self.errors += 1
            log.warning("skipped log entry %s: %s", record.get("event_id"), exc)
            return 0
        return 1

    def _compare_with_baseline(self, record: dict[str, Any]) -> None:
        """Score the policy on a baseline decision before learning from it (so the estimate
        is progressive, never on examples already learned)."""
        if self.apprentice is None or self.apprentice.graduated:
            return
        actions = as_actions(record["actions"])
        baseline = index_of(actions, record["chosen"])
        pmf = self.policy.distribution(record["context"], actions)
        self.apprentice.add(pmf, baseline, record["reward"], record["context"], actions)
        if self.apprentice.check():
            log.warning("apprentice mode: %s graduated after %d baseline decisions: %s",
                        self.spec, self.apprentice.graduated_at, self.apprentice.summary())

    def publish(self) -> None:
        self.published_version = write_checkpoint(self.client, self.spec, self.policy,
                                                  self.log_id, self.apprentice)
        self._last_publish = time.monotonic()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except redis.RedisError as exc:
                log.warning("learner %s: redis unavailable (%s); retrying", self.spec, exc)
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()


def _stream_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def _successor(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (XTRIM MINID keeps ids from there on)."""
    millis, sequence = _stream_order(entry_id)
    return f"{millis}-{sequence + 1}"


def learner_deployment():
    """The Serve deployment that hosts one ``LearnerLoop`` (imported lazily: importing this
    module must not require Ray)."""
    from ray import serve as ray_serve

    @ray_serve.deployment(num_replicas=1, max_ongoing_requests=8, health_check_period_s=5)
    class Learner:
        def __init__(self, settings: dict[str, Any]) -> None:
            self.settings = Settings.model_validate(settings)
            # one single-writer loop per arm, each with its own checkpoint and log position
            self.loops = {spec: LearnerLoop(self.settings, spec)
                          for spec in self.settings.arm_shares}
            self.threads = [threading.Thread(target=loop.run_forever, name=f"learn-{spec}",
                                             daemon=True) for spec, loop in self.loops.items()]
            for thread in self.threads:
                thread.start()

        def _loop_for(self, spec: str) -> LearnerLoop:
            for name, loop in self.loops.items():
                if name.split("?")[0] == spec.split("?")[0]:
                    return loop
            raise LearnerError(f"the model is a {spec}; this service runs {list(self.loops)}")

        def import_model(self, data: bytes) -> int:
            policy = load_policy(data)
            loop = self._loop_for(policy.spec)
            policy.spec = loop.spec
            return loop.replace_model(policy)

        def reset(self, spec: str | None = None) -> int:
            loop = self._loop_for(spec or self.settings.control_arm)
            return loop.replace_model(make_policy(loop.spec))

        def status(self) -> list[dict[str, Any]]:
            return [{"policy": loop.spec, "version": loop.policy.n_updates,
                     "published": loop.published_version, "log_id": loop.log_id,
                     "errors": loop.errors} for loop in self.loops.values()]

        def check_health(self) -> None:
            if not all(thread.is_alive() for thread in self.threads):
                raise RuntimeError("a learner thread died")

        def __del__(self) -> None:
            # Checkpoint on shutdown so a restart resumes exactly here.
            for loop in getattr(self, "loops", {}).values():
                loop.stop()
            for thread in getattr(self, "threads", []):
                thread.join(timeout=5)
            for loop in getattr(self, "loops", {}).values():
                with contextlib.suppress(redis.RedisError):
                    loop.publish()

    return Learner
