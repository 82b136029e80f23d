"""The one small interface every policy implements.

A policy turns a context and candidate actions into a full probability distribution (pmf);
``rank`` applies the probability floor, draws the decision with the shared sampling helper and
orders the rest by preference. ``learn`` takes one logged (decision, reward) example.
Subclasses implement ``_distribution`` and ``_update`` and, when they hold a model,
``_dump``/``_restore``. Both hooks receive the candidates already turned into the policy's own
input form by ``_prepare`` (by default the featurizer's namespaces; VW prepares its text
lines, baselines need nothing), so each policy converts inputs once, in one place.
"""

from __future__ import annotations

import inspect
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Self

from learners.errors import ActionError, LearnerError, ModelFormatError, SpecError
from learners.features import featurize
from learners.sampling import preference_order, rng_for, sample, with_floor
from learners.types import Action, ActionId, Context, RankedAction, Ranking, as_actions, index_of

_MAGIC = b"raybandit-policy/1\n"


class Policy(ABC):
    """Base class of all policies (see the module docstring).

    Parameters
    ----------
    floor
        Share of probability mass spread uniformly over all candidates, so that every action
        keeps at least ``floor / K``; this keeps logged decisions usable for off-policy
        evaluation of other policies.
    seed
        Seeds the policy's own random source (used when ``rank`` gets no event id or seed).
    """

    kind: ClassVar[str] = ""
    default_floor: ClassVar[float] = 0.02

    def __init__(self, *, floor: float | None = None, seed: int | None = None) -> None:
        self.floor = self.default_floor if floor is None else float(floor)
        if not 0.0 <= self.floor < 1.0:
            raise SpecError(f"`floor` must be in [0, 1), got {floor}")
        self.seed = seed
        self.spec = self.kind
        self._rng = random.Random(seed)
        self._n_updates = 0

    # -- public API ---------------------------------------------------------------------------
    def rank(
        self,
        context: Context | None,
        actions: Iterable[Any],
        *,
        exclude: Iterable[ActionId] | None = None,
        top_k: int | None = None,
        event_id: str | None = None,
        seed: int | None = None,
    ) -> Ranking:
        """Choose one action and rank all candidates (see ``Ranking``).

        The same ``event_id`` (or ``seed``) with the same model gives the same decision.
        """
        candidates = as_actions(actions)
        if exclude:
            excluded = set(exclude)
            candidates = [a for a in candidates if a.id not in excluded]
            if not candidates:
                raise ActionError("every action is excluded: nothing left to rank")
        rng = rng_for(event_id, seed, self._rng)
        pmf, scores = self._scored(context, candidates, rng)
        chosen, probability = sample(pmf, rng.random())
        order = preference_order(pmf, scores, chosen)
        if top_k is not None:
            if top_k < 1:
                raise LearnerError(f"`top_k` must be >= 1, got {top_k}")
            order = order[:top_k]
        return Ranking(
            chosen=candidates[chosen].id,
            probability=probability,
            ranking=[RankedAction(candidates[i].id, pmf[i]) for i in order],
            pmf=pmf,
            actions=candidates,
        )

    def distribution(
        self, context: Context | None, actions: Iterable[Any], *, seed: int | None = None
    ) -> list[float]:
        """The probabilities ``rank`` would choose each candidate with (floor included)."""
        rng = rng_for(None, seed, self._rng)
        return self._scored(context, as_actions(actions), rng)[0]

    def learn(
        self,
        context: Context | None,
        actions: Iterable[Any],
        chosen: ActionId,
        probability: float,
        reward: float,
    ) -> None:
        """Learn from one decision: the candidates, what was chosen with what probability,
        and the reward it earned."""
        candidates = as_actions(actions)
        index = index_of(candidates, chosen)
        if not (isinstance(probability, int | float) and 0.0 < probability <= 1.0):
            raise LearnerError(f"`probability` must be in (0, 1], got {probability}")
        if not (isinstance(reward, int | float) and math.isfinite(reward)):
            raise LearnerError(f"`reward` must be a finite number, got {reward}")
        prepared = self._prepare(context, candidates)
        self._update(prepared, candidates, index, float(probability), float(reward))
        self._n_updates += 1

    @property
    def n_updates(self) -> int:
        """How many examples this policy has learned from (its model version)."""
        return self._n_updates

    def params(self) -> dict[str, Any]:
        """Constructor arguments, stored under their own names (for configs, repr and MLflow)."""
        return {name: getattr(self, name) for name in constructor_params(type(self))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r})"

    def save(self) -> bytes:
        """Everything needed to continue exactly where this policy is (model, counters, RNG)."""
        header = {
            "class": type(self).__name__,
            "spec": self.spec,
            "n_updates": self._n_updates,
            "rng": self._rng.getstate(),
        }
        return _MAGIC + json.dumps(header).encode() + b"\n" + self._dump()

    def load(self, data: bytes) -> Self:
        """Restore what ``save`` wrote; the policy must be of the same kind."""
        header, payload = read_header(data)
        if header["class"] != type(self).__name__:
            raise ModelFormatError(
                f"model was saved by {header['class']} ({header['spec']}), "
                f"cannot load it into {type(self).__name__} ({self.spec})"
            )
        version, state, gauss = header["rng"]
        self._rng.setstate((version, tuple(state), gauss))
        self._n_updates = int(header["n_updates"])
        self._restore(payload)
        return self

    # -- for subclasses -----------------------------------------------------------------------
    def _prepare(self, context: Context | None, actions: list[Action]) -> Any:
        """Inputs in the form this policy's hooks take: here, namespaced features."""
        return featurize(context), [featurize(a.features) for a in actions]

    @abstractmethod
    def _distribution(
        self, prepared: Any, actions: list[Action], rng: random.Random
    ) -> tuple[list[float], list[float]]:
        """Return (pmf before the floor, preference scores), in candidate order."""

    @abstractmethod
    def _update(
        self, prepared: Any, actions: list[Action], chosen: int, probability: float, reward: float
    ) -> None:
        """Learn one example (inputs already validated and prepared)."""

    def _dump(self) -> bytes:
        return b""

    def _restore(self, payload: bytes) -> None:
        return None

    # -- internals ------------------------------------------------------------------------------
    def _scored(
        self, context: Context | None, actions: list[Action], rng: random.Random
    ) -> tuple[list[float], list[float]]:
        pmf, scores = self._distribution(self._prepare(context, actions), actions, rng)
        return with_floor(pmf, self.floor), scores


def read_header(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split saved policy bytes into their JSON header and the model payload."""
    if not isinstance(data, bytes | bytearray) or not data.startswith(_MAGIC):
        raise ModelFormatError("not a raybandit policy: the data does not start with its header")
    end = data.index(b"\n", len(_MAGIC))
    return json.loads(data[len(_MAGIC) : end]), bytes(data[end + 1 :])


def constructor_params(cls: type) -> list[str]:
    """Names of the keyword arguments a policy class (and its bases) accept."""
    names: dict[str, None] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                names[name] = None
    return list(names)
