"""River policies: a River regressor predicts each candidate's reward, an exploration rule
on top turns the predictions into a full distribution.

Two ways to lay out the features (``mode``):

* ``joint`` (default): one model for all actions over the action's own features, its id, and
  the products of every context feature with every action feature (an action with no
  features of its own is crossed through its id). This ranks actions that carry features,
  including items never seen before.
* ``disjoint``: one model per action id over the context features, the classic per-arm
  LinUCB layout; use it when the set of arms is fixed and actions have no features.

=================  ========================================  ====================================
spec               River model                               exploration
=================  ========================================  ====================================
river:epsilon      ``linear_model.LinearRegression`` (SGD)   epsilon-greedy on predicted reward
river:linucb       ``linear_model.BayesianLinearRegression`` argmax of mean + ``alpha`` * std (UCB)
river:thompson     ``linear_model.BayesianLinearRegression`` posterior draws; the pmf is the share
                                                             of ``n_draws`` draws each action wins
=================  ========================================  ====================================

The Bayesian posterior is what LinUCB keeps (the inverse design matrix), so ``river:linucb``
is LinUCB with a propensity: the greedy UCB choice with the probability floor as its only
randomness.

>>> from learners import make_policy
>>> policy = make_policy("river:linucb?alpha=0.5", seed=3)
>>> actions = [{"id": 1, "features": {"kind": "a"}}, {"id": 2, "features": {"kind": "b"}}]
>>> for _ in range(100):
...     r = policy.rank({"hour": 9}, actions)
...     policy.learn({"hour": 9}, actions, r.chosen, r.probability, float(r.chosen == 2))
>>> policy.rank({"hour": 9}, actions).ranking[0].id
2
"""

from __future__ import annotations

import pickle
import random
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from river import linear_model, optim

from learners.errors import SpecError
from learners.features import Namespaces, flatten
from learners.policy import Policy
from learners.sampling import greedy_pmf
from learners.types import Action

MODES = ("joint", "disjoint")
Prepared = tuple[Namespaces, list[Namespaces]]
_BIAS = "_bias"


class RiverPolicy(Policy):
    """Shared machinery of the River policies (feature layout, per-arm models, persistence)."""

    kind: ClassVar[str] = "river"

    def __init__(self, *, mode: str = "joint", floor: float | None = None, seed: int | None = None):
        super().__init__(floor=floor, seed=seed)
        if mode not in MODES:
            raise SpecError(f"`mode` must be one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        self._models: dict[Any, Any] = {}

    @abstractmethod
    def _new_model(self) -> Any:
        """A fresh River regressor."""

    def _model_for(self, action: Action) -> Any:
        key = action.id if self.mode == "disjoint" else None
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = self._new_model()
        return model

    def _inputs(self, prepared: Prepared, actions: list[Action]) -> list[dict[str, float]]:
        context, features = prepared
        ctx = flatten(context)
        if self.mode == "disjoint":
            shared = {_BIAS: 1.0, **ctx}
            return [shared] * len(actions)
        inputs = []
        for action, namespaces in zip(actions, features, strict=True):
            own = flatten(namespaces)
            item = f"_id={action.id}"
            x = {_BIAS: 1.0, item: 1.0, **own}
            basis = own or {item: 1.0}
            for a_name, a_value in basis.items():
                for c_name, c_value in ctx.items():
                    x[f"{c_name}^{a_name}"] = c_value * a_value
            inputs.append(x)
        return inputs

    def _update(
        self,
        prepared: Prepared,
        actions: list[Action],
        chosen: int,
        probability: float,
        reward: float,
    ) -> None:
        context, features = prepared
        x = self._inputs((context, features[chosen : chosen + 1]), actions[chosen : chosen + 1])[0]
        self._model_for(actions[chosen]).learn_one(x, reward)

    def _dump(self) -> bytes:
        # River models are plain Python objects; pickle is River's own persistence format.
        # Only load models from sources you trust.
        return pickle.dumps(self._models, protocol=pickle.HIGHEST_PROTOCOL)

    def _restore(self, payload: bytes) -> None:
        self._models = pickle.loads(payload)


class RiverEpsilon(RiverPolicy):
    """Epsilon-greedy over a River ``LinearRegression`` trained by SGD."""

    kind = "river:epsilon"

    def __init__(
        self,
        *,
        epsilon: float = 0.05,
        learning_rate: float = 0.05,
        l2: float = 0.0,
        mode: str = "joint",
        floor: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(mode=mode, floor=floor, seed=seed)
        if not 0.0 <= epsilon <= 1.0:
            raise SpecError(f"`epsilon` must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)
        self.learning_rate = float(learning_rate)
        self.l2 = float(l2)

    def _new_model(self) -> Any:
        return linear_model.LinearRegression(
            optimizer=optim.SGD(self.learning_rate),
            intercept_lr=self.learning_rate,
            l2=self.l2,
        )

    def _distribution(
        self,
        prepared: Prepared,
        actions: list[Action],
        rng: random.Random,
    ) -> tuple[list[float], list[float]]:
        inputs = self._inputs(prepared, actions)
        scores = [
            self._model_for(a).predict_one(x) for a, x in zip(actions, inputs, strict=True)
        ]
        return greedy_pmf(scores, self.epsilon), scores


class _BayesianPolicy(RiverPolicy):
    """Policies over River's ``BayesianLinearRegression`` posterior."""

    def __init__(
        self,
        *,
        prior: float = 1.0,
        noise: float = 4.0,
        mode: str = "joint",
        floor: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(mode=mode, floor=floor, seed=seed)
        self.prior = float(prior)
        self.noise = float(noise)

    def _new_model(self) -> Any:
        # River's alpha is the prior precision, beta the noise precision. River's `smoothing`
        # (forgetting) is not offered: it decays the prior too, and with sparse features the
        # precision matrix turns singular (numpy LinAlgError) within a few hundred updates.
        return linear_model.BayesianLinearRegression(alpha=self.prior, beta=self.noise)

    def _posterior(
        self, prepared: Prepared, actions: list[Action]
    ) -> tuple[np.ndarray, np.ndarray]:
        inputs = self._inputs(prepared, actions)
        dists = [
            self._model_for(a).predict_one(x, with_dist=True)
            for a, x in zip(actions, inputs, strict=True)
        ]
        mean = np.array([d.mu for d in dists])
        # River's sigma is predictive (it includes the noise 1/beta); exploration needs the
        # uncertainty of the mean alone, LinUCB's sqrt(x' A^-1 x).
        variance = np.array([d.sigma**2 for d in dists]) - 1.0 / self.noise
        return mean, np.sqrt(np.clip(variance, 0.0, None))


class RiverLinUCB(_BayesianPolicy):
    """LinUCB: the action with the highest ``mean + alpha * std`` of its predicted reward."""

    kind = "river:linucb"

    def __init__(self, *, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def _distribution(
        self,
        prepared: Prepared,
        actions: list[Action],
        rng: random.Random,
    ) -> tuple[list[float], list[float]]:
        mean, std = self._posterior(prepared, actions)
        scores = (mean + self.alpha * std).tolist()
        return greedy_pmf(scores, 0.0), scores


class RiverThompson(_BayesianPolicy):
    """Thompson sampling; the pmf is estimated from ``n_draws`` posterior draws per decision,
    and the decision is drawn from that pmf, so the logged probability is the one used."""

    kind = "river:thompson"

    def __init__(self, *, n_draws: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_draws < 1:
            raise SpecError(f"`n_draws` must be >= 1, got {n_draws}")
        self.n_draws = int(n_draws)

    def _distribution(
        self,
        prepared: Prepared,
        actions: list[Action],
        rng: random.Random,
    ) -> tuple[list[float], list[float]]:
        mean, std = self._posterior(prepared, actions)
        draws = np.random.default_rng(rng.getrandbits(64)).normal(
            mean, std, size=(self.n_draws, len(actions))
        )
        wins = np.bincount(draws.argmax(axis=1), minlength=len(actions))
        return (wins / self.n_draws).tolist(), mean.tolist()
