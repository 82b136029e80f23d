"""Vowpal Wabbit policies on ``--cb_explore_adf`` (action-dependent features).

Each candidate is one ADF line (its features in namespace ``a``, its id in ``i``), the context
is the shared line (namespace ``c``); ``interactions`` default to ``ca ci`` so VW learns how
context changes the value of each feature and each item. VW minimises cost, and the label is
``0:cost:probability`` with ``cost = -reward`` (see ``vw_format.cost_from_reward``).

The exploration algorithms map to VW's own reductions:

=============  ======================================  ==================================
spec           VW arguments                            exploration
=============  ======================================  ==================================
vw:epsilon     ``--epsilon 0.05``                      epsilon-greedy
vw:squarecb    ``--squarecb``                          inverse-gap weighting (SquareCB)
vw:bag         ``--bag 5``                             bootstrap Thompson-like bagging
vw:cover       ``--cover 3``                           online cover
vw:softmax     ``--softmax --lambda 10``               softmax over scores
vw:rnd         ``--rnd 3``                             random network distillation
=============  ======================================  ==================================

A saved model resumes training where it stopped (VW >= 9 saves the resume state), with one
exception we measured: ``vw:rnd`` ranks identically after a reload, but its continued training
drifts from the original by ~1e-4 in probability, since VW does not persist all of the rnd
reduction's state.

Any other spec parameter is passed to VW as an argument of the same name, e.g.
``vw:epsilon?epsilon=0.1&learning_rate=0.5&l2=1e-6``; VW itself rejects what it does not know.

>>> from learners import make_policy
>>> policy = make_policy("vw:epsilon?epsilon=0.1", seed=1)
>>> actions = [{"id": "news", "features": {"topic": "news"}},
...            {"id": "sport", "features": {"topic": "sport"}}]
>>> for _ in range(200):
...     r = policy.rank({"user": "tom"}, actions)
...     policy.learn({"user": "tom"}, actions, r.chosen, r.probability,
...                  reward=1.0 if r.chosen == "sport" else 0.0)
>>> policy.rank({"user": "tom"}, actions, event_id="e1").ranking[0].id
'sport'
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any, ClassVar

from vowpalwabbit import Workspace

from learners.errors import SpecError
from learners.features import Namespaces
from learners.policy import Policy
from learners.types import Action
from learners.vw_format import DEFAULT_INTERACTIONS, adf_lines, with_label

ALGORITHMS: dict[str, dict[str, Any]] = {
    "epsilon": {"epsilon": 0.05},
    "squarecb": {"squarecb": True},
    "bag": {"bag": 5},
    "cover": {"cover": 3},
    "softmax": {"softmax": True, "lambda": 10.0},
    "rnd": {"rnd": 3},
}


class VWPolicy(Policy):
    """A ``--cb_explore_adf`` Vowpal Wabbit workspace behind the ``Policy`` interface.

    Parameters
    ----------
    algorithm
        One of ``ALGORITHMS`` (epsilon, squarecb, bag, cover, softmax, rnd).
    interactions
        VW namespace interactions; ``ca`` crosses context with action features, ``ci`` context
        with the action id.
    id_feature
        Add each action's id as a feature (namespace ``i``), so items without features are
        still told apart.
    vw_args
        Extra VW arguments by their long names (``{"l2": 1e-6}``); they override the defaults.
    """

    kind: ClassVar[str] = "vw"

    def __init__(
        self,
        algorithm: str = "epsilon",
        *,
        interactions: tuple[str, ...] | list[str] | str = DEFAULT_INTERACTIONS,
        id_feature: bool = True,
        vw_args: dict[str, Any] | None = None,
        floor: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(floor=floor, seed=seed)
        if algorithm not in ALGORITHMS:
            raise SpecError(
                f"`algorithm` must be one of {sorted(ALGORITHMS)}, got {algorithm!r}"
            )
        self.algorithm = algorithm
        if isinstance(interactions, str):
            interactions = [part for part in interactions.replace(",", " ").split() if part]
        self.interactions = tuple(interactions)
        self.id_feature = bool(id_feature)
        self.vw_args = dict(vw_args or {})
        self.spec = f"vw:{algorithm}"
        self._workspace = self._new_workspace()

    def _arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"cb_explore_adf": True, "quiet": True}
        args.update(ALGORITHMS[self.algorithm])
        if self.interactions:
            args["interactions"] = list(self.interactions)
        if self.seed is not None:
            args["random_seed"] = self.seed
        args.update(self.vw_args)
        return args

    def _new_workspace(self, model_path: str | None = None) -> Workspace:
        args = self._arguments()
        if model_path is not None:
            # The model carries VW's own random state as its `random_seed`; passing ours again
            # would conflict with it.
            args.pop("random_seed", None)
            args["initial_regressor"] = model_path
        try:
            return Workspace(**args)
        except Exception as exc:  # VW raises plain RuntimeError/ValueError on bad options
            raise SpecError(f"Vowpal Wabbit rejected the arguments {args}: {exc}") from exc

    def vw_lines(
        self, context: Namespaces, actions: list[Action], features: list[Namespaces]
    ) -> tuple[str, list[str]]:
        return adf_lines(context, features, [a.id for a in actions], self.id_feature)

    def _distribution(
        self,
        context: Namespaces,
        actions: list[Action],
        features: list[Namespaces],
        rng: random.Random,
    ) -> tuple[list[float], list[float]]:
        shared, lines = self.vw_lines(context, actions, features)
        pmf = self._workspace.predict([shared, *lines])
        # VW's pmf already encodes its preference; equal-probability ties keep candidate order.
        return list(pmf), list(pmf)

    def _update(
        self,
        context: Namespaces,
        actions: list[Action],
        features: list[Namespaces],
        chosen: int,
        probability: float,
        reward: float,
    ) -> None:
        shared, lines = self.vw_lines(context, actions, features)
        self._workspace.learn([shared, *with_label(lines, chosen, reward, probability)])

    def _dump(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="raybandit-vw-") as folder:
            path = os.path.join(folder, "model.vw")
            self._workspace.save(path)
            with open(path, "rb") as handle:
                return handle.read()

    def _restore(self, payload: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="raybandit-vw-") as folder:
            path = os.path.join(folder, "model.vw")
            with open(path, "wb") as handle:
                handle.write(payload)
            previous, self._workspace = self._workspace, self._new_workspace(path)
        previous.finish()
