"""Off-policy estimators of a target policy's mean reward per decision, streaming.

Each estimator is a small object with a short stable ``name`` (``replay``, ``ips``,
``snips``, ``dm``, ``dr``). Examples go in one at a time with ``add``; ``estimate`` returns
the value with a 95% normal interval; ``merge`` combines two partial estimators (shards of a
log, Ray tasks). Only running sums are kept, never arrays.

Inputs of ``add`` for one logged decision:

* ``probability``: the logging policy's probability of the logged action;
* ``reward``: the reward it earned;
* ``target_probability``: the target policy's probability of that same action;
* ``matched``: whether the target's own sampled choice equals the logged action (replay);
* ``predicted``: the reward model's prediction for the logged action, and
  ``predicted_value``: the target's expected reward under the model, sum_a pi(a) r_hat(a).

>>> ips = make_estimator("ips")
>>> for p_log, r, p_target in [(0.5, 1.0, 1.0), (0.5, 0.0, 0.0), (0.25, 1.0, 0.5)]:
...     ips.add(probability=p_log, reward=r, target_probability=p_target)
>>> ips.estimate().value
1.3333333333333333
"""

from __future__ import annotations

import math
from typing import ClassVar

from learners.evaluation import Z95, Estimate, MeanStat, doubly_robust


class Estimator:
    """Base class; subclasses define ``name``, ``add`` and ``estimate``."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self._stat = MeanStat()

    def add(
        self,
        *,
        probability: float,
        reward: float,
        target_probability: float,
        matched: bool = False,
        predicted: float = 0.0,
        predicted_value: float = 0.0,
    ) -> None:
        self._stat.add(
            self.term(probability, reward, target_probability, matched, predicted, predicted_value)
        )

    def term(
        self, probability: float, reward: float, target_probability: float, matched: bool,
        predicted: float, predicted_value: float,
    ) -> float:
        raise NotImplementedError

    def estimate(self) -> Estimate:
        return self._stat.estimate()

    def merge(self, other: Estimator) -> None:
        self._stat.merge(other._stat)


class IPS(Estimator):
    """Inverse propensity scoring: mean of (pi(a)/p(a)) * r. Unbiased, high variance."""

    name = "ips"

    def term(self, probability, reward, target_probability, matched, predicted, predicted_value):
        return target_probability / probability * reward


class DM(Estimator):
    """Direct method: the reward model's value of the target, sum_a pi(a) r_hat(a).
    Low variance, biased by the model; its interval ignores model error."""

    name = "dm"

    def term(self, probability, reward, target_probability, matched, predicted, predicted_value):
        return predicted_value


class DR(Estimator):
    """Doubly robust: DM plus the IPS-weighted residual of the model on the logged action."""

    name = "dr"

    def term(self, probability, reward, target_probability, matched, predicted, predicted_value):
        return doubly_robust(probability, reward, target_probability, predicted, predicted_value)


class Replay(Estimator):
    """Li et al. (2011) rejection replay: the mean reward of the events where the target's own
    sampled choice equals the logged action. Unbiased when the log was uniformly random;
    ``n`` is the number of matched events."""

    name = "replay"

    def add(self, *, reward: float, matched: bool = False, **_: float) -> None:
        if matched:
            self._stat.add(reward)


class SNIPS(Estimator):
    """Self-normalised IPS: sum(w r) / sum(w). Slightly biased, much lower variance; the
    interval uses the delta method."""

    name = "snips"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.sw = self.swr = self.sww = self.swwr = self.swwrr = 0.0

    def add(self, *, probability: float, reward: float, target_probability: float,
            **_: float) -> None:
        w = target_probability / probability
        self.n += 1
        self.sw += w
        self.swr += w * reward
        self.sww += w * w
        self.swwr += w * w * reward
        self.swwrr += w * w * reward * reward

    def merge(self, other: Estimator) -> None:
        assert isinstance(other, SNIPS)
        self.n += other.n
        self.sw += other.sw
        self.swr += other.swr
        self.sww += other.sww
        self.swwr += other.swwr
        self.swwrr += other.swwrr

    def estimate(self) -> Estimate:
        if self.n == 0 or self.sw == 0:
            return Estimate(math.nan, (math.nan, math.nan), self.n)
        value = self.swr / self.sw
        mean_w = self.sw / self.n
        # Var(V) ~ E[(w r - V w)^2] / (n E[w]^2)
        residual = (self.swwrr - 2 * value * self.swwr + value * value * self.sww) / self.n
        half = Z95 * math.sqrt(max(residual, 0.0) / self.n) / mean_w
        return Estimate(value, (value - half, value + half), self.n)


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (Replay, IPS, SNIPS, DM, DR)
}


def make_estimator(name: str) -> Estimator:
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise ValueError(f"unknown estimator `{name}`; known: {', '.join(ESTIMATORS)}")
    return cls()
