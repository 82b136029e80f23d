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

VW's learning rate decays by default (``power_t=0.5``), which is right for stationary
problems (on ``classification:digits`` squarecb reaches 0.86 with it, 0.48 without) but lets
a long-running model all but stop adapting. Where preferences drift, pass ``power_t=0``
(on ``personalization?swap_at=0.5`` squarecb recovers to 0.75 after the swap with it, 0.59
without).

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

import contextlib
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pylibvw
from vowpalwabbit import Workspace

from learners.errors import SpecError
from learners.features import featurize
from learners.policy import Policy
from learners.types import Action, Context
from learners.vw_format import DEFAULT_INTERACTIONS, action_line, context_line, with_label

_LINE_CACHE_SIZE = 50_000

# Argument sets VW has accepted in this process (see ``VWPolicy.__init__``).
_ACCEPTED_ARGUMENTS: set[str] = set()

# VW text by content (see ``_cached``), one cache per ``id_feature`` setting, the only option
# the text depends on. Shared by every policy in the process, so a ranking replica's policy
# for a newly published version starts with the text its predecessor built (~5 us per action
# line, rebuilt for every catalog item after every reload otherwise).
_LINE_CACHES: dict[bool, dict[Any, str]] = {}

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
        self._lines = _LINE_CACHES.setdefault(self.id_feature, {})
        # VW checks its arguments only by building a workspace, so the first policy with a
        # given set builds one here (bad arguments fail at construction). Later ones build
        # theirs on first use: a policy made to ``load`` a saved model (every published
        # version, in every ranking replica) would otherwise build one only to replace it
        # (~5 of the ~14 ms a reload took, holding the GIL).
        self._ws: Workspace | None = None
        arguments = repr(sorted(self._arguments().items()))
        if arguments not in _ACCEPTED_ARGUMENTS:
            self._ws = self._new_workspace()
            _ACCEPTED_ARGUMENTS.add(arguments)

    @property
    def _workspace(self) -> Workspace:
        if self._ws is None:
            self._ws = self._new_workspace()
        return self._ws

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

    def _prepare(self, context: Context | None, actions: list[Action]) -> tuple[str, list[str]]:
        """The shared line and one line per action (labels are added by ``_update``)."""
        cache = self._lines
        shared = _cached(cache, context, lambda: context_line(featurize(context)))

        def build_line(action: Action) -> Callable[[], str]:
            return lambda: action_line(featurize(action.features), action.id, self.id_feature)

        lines = [_cached(cache, a.features, build_line(a), a.id) for a in actions]
        return shared, lines

    def _distribution(
        self, prepared: tuple[str, list[str]], actions: list[Action], rng: random.Random
    ) -> tuple[list[float], list[float]]:
        shared, lines = prepared
        pmf = predict_multiline(self._workspace, [shared, *lines])
        # VW's pmf already encodes its preference; equal-probability ties keep candidate order.
        return pmf, list(pmf)

    def _update(
        self,
        prepared: tuple[str, list[str]],
        actions: list[Action],
        chosen: int,
        probability: float,
        reward: float,
    ) -> None:
        shared, lines = prepared
        learn_multiline(self._workspace, [shared, *with_label(lines, chosen, reward, probability)])

    def _dump(self) -> bytes:
        return workspace_bytes(self._workspace)

    def _restore(self, payload: bytes) -> None:
        previous, self._ws = self._ws, workspace_from_bytes(payload, self._new_workspace)
        if previous is not None:
            previous.finish()


def workspace_bytes(workspace: Workspace) -> bytes:
    """A VW model as bytes (VW saves only to files)."""
    with tempfile.TemporaryDirectory(prefix="raybandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        workspace.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def workspace_from_bytes(data: bytes, open_model: Callable[[str], Workspace]) -> Workspace:
    """A workspace ``open_model(path)`` opens on the model ``workspace_bytes`` wrote."""
    with tempfile.TemporaryDirectory(prefix="raybandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        with open(path, "wb") as handle:
            handle.write(data)
        return open_model(path)


# pyvw's Workspace.predict/learn wrap every parsed line in a Python ``Example`` object (label
# type lookups, enum conversions) before calling the same C++ functions used here directly:
# measured 2.7x faster per predict+learn on 10 actions, with identical results
# (tests/learners/test_vw.py holds them equal to pyvw's).
@contextlib.contextmanager
def _parsed(workspace: Workspace, text: str, multiline: bool) -> Iterator[list[Any]]:
    """VW's own examples for ``text``, handed back to the workspace afterwards."""
    examples = pylibvw.vw._parse(workspace, text)
    try:
        yield examples
    finally:
        if multiline:
            pylibvw.vw._finish_example_multi_ex(workspace, examples)
        else:
            pylibvw.vw._finish_example(workspace, examples[0])


def predict_multiline(workspace: Workspace, lines: list[str]) -> list[float]:
    """The pmf of one multi-line (ADF) example, in candidate order."""
    with _parsed(workspace, "\n".join(lines), multiline=True) as examples:
        pylibvw.vw.predict_multi(workspace, examples)
        return list(examples[0].get_action_scores())


def learn_multiline(workspace: Workspace, lines: list[str]) -> None:
    """Learn one labelled multi-line (ADF) example."""
    with _parsed(workspace, "\n".join(lines), multiline=True) as examples:
        pylibvw.vw.learn_multi(workspace, examples)


def predict_line(workspace: Workspace, line: str) -> float:
    """The prediction of one single-line (regression) example."""
    with _parsed(workspace, line, multiline=False) as examples:
        pylibvw.vw.predict(workspace, examples[0])
        return float(examples[0].get_simplelabel_prediction())


def learn_line(workspace: Workspace, line: str) -> None:
    """Learn one labelled single-line example."""
    with _parsed(workspace, line, multiline=False) as examples:
        pylibvw.vw.learn(workspace, examples[0])


def _cached(
    cache: dict[Any, str], features: Any, build: Callable[[], str], action_id: Any = None
) -> str:
    """VW text for a flat features object, remembered by content.

    A catalog's actions recur in every request and a decision's context is seen again when
    its reward is learned, so text is built once per distinct content. Objects with nested or
    unhashable values are simply built every time. The key is the content itself, never the
    object's identity, so a mutated dict can never return stale text.
    """
    try:
        key = (action_id, tuple(features.items())) if features else (action_id, ())
        text = cache.get(key)
    except (TypeError, AttributeError):
        return build()
    if text is None:
        if len(cache) >= _LINE_CACHE_SIZE:
            cache.clear()
        text = cache[key] = build()
    return text
