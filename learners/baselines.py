"""Baseline policies: what a team runs before (or instead of) a contextual bandit.

>>> from learners import make_policy
>>> make_policy("fixed").rank({}, [{"id": "a"}, {"id": "b"}]).chosen
'a'
>>> [item.probability for item in make_policy("uniform").rank({}, [{"id": 1}, {"id": 2}]).ranking]
[0.5, 0.5]
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, ClassVar

from learners.errors import SpecError
from learners.policy import Policy
from learners.sampling import greedy_pmf
from learners.types import Action


class _ContextFree(Policy):
    """Baselines look at action ids only, so they skip featurization."""

    def _prepare(self, context: Any, actions: list[Action]) -> None:
        return None


class Uniform(_ContextFree):
    """Every candidate equally likely: the logging policy that makes replay unbiased."""

    kind = "uniform"

    def _distribution(
        self, prepared: Any, actions: list[Action], rng: random.Random
    ) -> tuple[list[float], list[float]]:
        k = len(actions)
        return [1.0 / k] * k, [0.0] * k

    def _update(self, *args: Any) -> None:
        return None


class Fixed(_ContextFree):
    """Always the first non-excluded candidate: the caller's own order, as a baseline.

    Its floor defaults to 0, so it is deterministic; set ``floor`` to log it with support.
    """

    kind = "fixed"
    default_floor: ClassVar[float] = 0.0

    def _distribution(
        self, prepared: Any, actions: list[Action], rng: random.Random
    ) -> tuple[list[float], list[float]]:
        k = len(actions)
        pmf = [0.0] * k
        pmf[0] = 1.0
        return pmf, [float(k - i) for i in range(k)]

    def _update(self, *args: Any) -> None:
        return None


class Popularity(_ContextFree):
    """Smoothed mean reward per action id, ignoring the context.

    ``score = (sum of rewards + prior_mean * prior_weight) / (views + prior_weight)``
    ``+ bonus * sqrt(log(total views + 1) / (views + 1))``; the UCB-style bonus makes new and
    rarely shown items come up, and ``epsilon`` of the mass is spread uniformly.

    >>> policy = Popularity(seed=0)
    >>> actions = [{"id": "a"}, {"id": "b"}]
    >>> for _ in range(50):
    ...     policy.learn({}, actions, "b", 0.5, 1.0)
    ...     policy.learn({}, actions, "a", 0.5, 0.0)
    >>> policy.rank({}, actions, seed=1).ranking[0].id
    'b'
    """

    kind = "popularity"

    def __init__(
        self,
        *,
        epsilon: float = 0.05,
        prior_mean: float = 0.0,
        prior_weight: float = 1.0,
        bonus: float = 0.1,
        floor: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(floor=floor, seed=seed)
        if not 0.0 <= epsilon <= 1.0:
            raise SpecError(f"`epsilon` must be in [0, 1], got {epsilon}")
        if prior_weight <= 0:
            raise SpecError(f"`prior_weight` must be > 0, got {prior_weight}")
        self.epsilon = float(epsilon)
        self.prior_mean = float(prior_mean)
        self.prior_weight = float(prior_weight)
        self.bonus = float(bonus)
        self._views: dict[str, int] = {}
        self._rewards: dict[str, float] = {}
        self._total = 0

    def score(self, action_id: Any) -> float:
        key = str(action_id)
        views = self._views.get(key, 0)
        mean = (self._rewards.get(key, 0.0) + self.prior_mean * self.prior_weight) / (
            views + self.prior_weight
        )
        return mean + self.bonus * math.sqrt(math.log(self._total + 1) / (views + 1))

    def _distribution(
        self, prepared: Any, actions: list[Action], rng: random.Random
    ) -> tuple[list[float], list[float]]:
        scores = [self.score(a.id) for a in actions]
        return greedy_pmf(scores, self.epsilon), scores

    def _update(
        self, prepared: Any, actions: list[Action], chosen: int, probability: float, reward: float
    ) -> None:
        key = str(actions[chosen].id)
        self._views[key] = self._views.get(key, 0) + 1
        self._rewards[key] = self._rewards.get(key, 0.0) + reward
        self._total += 1

    def _dump(self) -> bytes:
        return json.dumps(
            {"views": self._views, "rewards": self._rewards, "total": self._total}
        ).encode()

    def _restore(self, payload: bytes) -> None:
        state = json.loads(payload)
        self._views, self._rewards, self._total = state["views"], state["rewards"], state["total"]
