"""Building blocks of honest evaluation, shared by the simulator and the service.

The simulator's off-policy estimators (``simulator.estimators``) and the service's apprentice
mode both need a running mean with an interval, a reward model for the direct method, and the
doubly robust term; they live here, below both, so each exists once.

>>> stat = MeanStat()
>>> for x in (1.0, 0.0, 1.0, 1.0):
...     stat.add(x)
>>> stat.estimate().value, stat.n
(0.75, 4)
>>> doubly_robust(probability=1.0, reward=1.0, target_probability=0.5, predicted=0.6,
...               predicted_value=0.4)
0.6
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from learners.types import Action, Context, as_actions
from learners.vw_format import DEFAULT_INTERACTIONS

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: tuple[float, float]
    n: int


class MeanStat:
    """Running mean and variance (Welford), mergeable (Chan et al.), saveable as a dict."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.n = n
        self.mean = mean
        self.m2 = m2

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def merge(self, other: MeanStat) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.mean += delta * other.n / n
        self.n = n

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else math.inf

    def estimate(self) -> Estimate:
        if self.n == 0:
            return Estimate(math.nan, (math.nan, math.nan), 0)
        half = Z95 * math.sqrt(self.variance / self.n) if self.n > 1 else math.inf
        return Estimate(self.mean, (self.mean - half, self.mean + half), self.n)

    def state(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MeanStat:
        return cls(int(state["n"]), float(state["mean"]), float(state["m2"]))


def doubly_robust(
    probability: float, reward: float, target_probability: float, predicted: float,
    predicted_value: float,
) -> float:
    """One decision's doubly robust term: the reward model's value of the target policy,
    ``sum_a pi(a) r_hat(a)``, plus the importance-weighted residual on the logged action."""
    return predicted_value + target_probability / probability * (reward - predicted)


class RewardModel:
    """The direct-method reward model: VW squared-loss regression on context x action
    features (the policies' own VW text), trained progressively: predict first, then learn."""

    def __init__(self) -> None:
        from learners.vw import VWPolicy

        self._text = VWPolicy()  # only its cached, escaped text building is used
        self._ws = self._workspace()

    @staticmethod
    def _workspace(model_path: str | None = None) -> Any:
        from vowpalwabbit import Workspace

        args: dict[str, Any] = {"quiet": True, "interactions": list(DEFAULT_INTERACTIONS)}
        if model_path is not None:
            args["initial_regressor"] = model_path
        return Workspace(**args)

    def _texts(self, context: Context | None, actions: list[Action]) -> list[str]:
        shared, lines = self._text._prepare(context, actions)
        context_text = shared.removeprefix("shared ")
        return [f"{context_text} {line}" for line in lines]

    def predict_and_learn(
        self, context: Context | None, actions: Iterable[Any], chosen: int,
        reward: float | None,
    ) -> list[float]:
        """The predicted reward of every candidate; then learn the chosen one's reward."""
        from learners.vw import learn_line, predict_line

        texts = self._texts(context, as_actions(actions))
        predictions = [predict_line(self._ws, text) for text in texts]
        if reward is not None:
            learn_line(self._ws, f"{float(reward)!r} {texts[chosen]}")
        return predictions

    def save(self) -> bytes:
        from learners.vw import workspace_bytes

        return workspace_bytes(self._ws)

    def load(self, data: bytes) -> RewardModel:
        from learners.vw import workspace_from_bytes

        previous, self._ws = self._ws, workspace_from_bytes(data, self._workspace)
        previous.finish()
        return self


def _sequential_z(look: int, alpha: float = 0.025) -> float:
    """The one-sided z of the ``look``-th check when the total chance of a false graduation
    over all checks must stay within ``alpha``: look k spends ``alpha * 6 / (pi^2 k^2)``
    (the terms sum to ``alpha``), so checking again and again cannot wear the guard down."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1.0 - alpha * 6.0 / (math.pi**2 * look * look))


class BaselineComparison:
    """Apprentice mode's evaluation: how the policy would have done against the caller's
    baseline, on decisions where the baseline was shown (so logged with probability 1).

    Each decision, before the policy learns from it, adds the paired difference between the
    policy's doubly robust value (its pmf, floor included, against a reward model trained
    progressively on the same decisions) and the reward the baseline actually earned.
    ``check`` runs every ``min_events`` decisions and graduates the policy when the lower
    confidence bound of that difference clears ``min_lift``; its z grows with each look so
    that repeated checks keep the overall chance of graduating a policy that is not better
    within 2.5% (``_sequential_z``).

    What it cannot do: actions the baseline never shows in some kind of context are judged
    by the reward model's extrapolation alone, which starts at 0 (no credit); a baseline
    that varies across contexts is what lets the policy prove itself.
    """

    def __init__(self, min_events: int = 1000, min_lift: float = 0.0) -> None:
        self.min_events = int(min_events)
        self.min_lift = float(min_lift)
        self.policy_value = MeanStat()
        self.baseline_value = MeanStat()
        self.difference = MeanStat()
        self.agreement = MeanStat()  # how often the policy's top choice is the baseline
        self.looks = 0
        self.graduated_at: int | None = None
        self.reward_model = RewardModel()

    @property
    def graduated(self) -> bool:
        return self.graduated_at is not None

    def add(self, pmf: list[float], baseline: int, reward: float, context: Context | None,
            actions: list[Action]) -> None:
        """One baseline decision: the policy's ``pmf`` on it, the ``baseline`` index shown
        and the ``reward`` it earned."""
        predicted = self.reward_model.predict_and_learn(context, actions, baseline, reward)
        value = doubly_robust(
            probability=1.0, reward=reward, target_probability=pmf[baseline],
            predicted=predicted[baseline],
            predicted_value=math.fsum(p * q for p, q in zip(pmf, predicted, strict=True)),
        )
        self.policy_value.add(value)
        self.baseline_value.add(reward)
        self.difference.add(value - reward)
        self.agreement.add(1.0 if pmf.index(max(pmf)) == baseline else 0.0)

    def check(self) -> bool:
        """Graduate if due and proven; True once graduated."""
        if self.graduated or self.difference.n < self.min_events * (self.looks + 1):
            return self.graduated
        self.looks += 1
        if self.lower_bound(self.looks) > self.min_lift:
            self.graduated_at = self.difference.n
        return self.graduated

    def lower_bound(self, look: int) -> float:
        d = self.difference
        if d.n < 2:
            return -math.inf
        return d.mean - _sequential_z(look) * math.sqrt(d.variance / d.n)

    def summary(self) -> dict[str, Any]:
        def value(stat: MeanStat) -> float | None:
            return stat.mean if stat.n else None

        diff = self.difference.estimate()
        return {
            "events": self.difference.n,
            "baseline_mean_reward": value(self.baseline_value),
            "policy_estimate": value(self.policy_value),
            "difference": value(self.difference),
            "difference_ci": list(diff.ci) if self.difference.n > 1 else None,
            "agreement": value(self.agreement),
            "graduated": self.graduated,
            "graduated_after": self.graduated_at,
            "next_check_after": None if self.graduated
            else self.min_events * (self.looks + 1),
            "min_lift": self.min_lift,
        }

    def save(self) -> tuple[dict[str, Any], bytes]:
        """(JSON-able state, reward model bytes)."""
        state = {name: getattr(self, name).state()
                 for name in ("policy_value", "baseline_value", "difference", "agreement")}
        state.update(looks=self.looks, graduated_at=self.graduated_at,
                     min_events=self.min_events, min_lift=self.min_lift)
        return state, self.reward_model.save()

    @classmethod
    def restore(cls, state: dict[str, Any], reward_model: bytes | None,
                min_events: int, min_lift: float) -> BaselineComparison:
        """Continue a saved comparison (the criterion comes from the current settings)."""
        self = cls(min_events, min_lift)
        for name in ("policy_value", "baseline_value", "difference", "agreement"):
            setattr(self, name, MeanStat.from_state(state[name]))
        self.looks = int(state["looks"])
        self.graduated_at = state["graduated_at"]
        if reward_model:
            self.reward_model.load(reward_model)
        return self
