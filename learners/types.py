"""Domain types shared by the service, the simulator and the library API.

Actions and rankings are small frozen dataclasses (they are built on every request, so they
stay cheap); ``LoggedDecision`` is the decision-log contract and is a pydantic model because it
is read from files written by other programs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from learners.errors import ActionError

ActionId = str | int
Context = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Action:
    """A candidate item: an ``id`` and its ``features`` (same rules as a context)."""

    id: ActionId
    features: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RankedAction:
    """One entry of a ranking: the action id and the probability the policy would choose it."""

    id: ActionId
    probability: float


@dataclass(frozen=True, slots=True)
class Ranking:
    """The answer of ``Policy.rank``.

    ``ranking`` starts with ``chosen`` and then follows the policy's order of preference;
    ``probability`` is the propensity of ``chosen`` (what gets logged) and ``pmf`` the full
    distribution over the candidates in their original order.
    """

    chosen: ActionId
    probability: float
    ranking: list[RankedAction]
    pmf: list[float]
    actions: list[Action]


def as_action(item: Any) -> Action:
    """Accept an ``Action``, a ``{"id", "features"}`` dict or any object with those attributes."""
    if isinstance(item, Action):
        return item
    if isinstance(item, Mapping):
        if "id" not in item:
            raise ActionError(f"every action needs an `id`, got keys {sorted(item)}")
        return Action(item["id"], item.get("features") or {})
    if hasattr(item, "id"):
        return Action(item.id, getattr(item, "features", None) or {})
    raise ActionError(
        f"an action must be a dict with `id` and `features`, got {type(item).__name__}"
    )


def as_actions(items: Iterable[Any]) -> list[Action]:
    """Normalise candidates and check they are non-empty with unique ids."""
    actions = [as_action(item) for item in items]
    if not actions:
        raise ActionError("`actions` must hold at least one action, got none")
    dupes = duplicate_ids([a.id for a in actions])
    if dupes:
        raise ActionError(f"action ids must be unique, got duplicates {dupes}")
    return actions


def duplicate_ids(ids: Sequence[ActionId]) -> list[str]:
    """The ids that occur more than once, compared as text: the learners' id feature, the
    counters and the log all key an item by ``str(id)``, so ``1`` and ``"1"`` are one item.

    >>> duplicate_ids(["a", 1, "b", "1"])
    ['1']
    """
    keys = [i if isinstance(i, str) else str(i) for i in ids]
    if len(set(keys)) == len(keys):  # the common case, at C speed: once per ranking
        return []
    return sorted(key for key, n in Counter(keys).items() if n > 1)


def index_of(actions: list[Action], action_id: ActionId) -> int:
    """Position of ``action_id`` among ``actions``, with a clear error when it is absent."""
    for i, action in enumerate(actions):
        if action.id == action_id:
            return i
    raise ActionError(f"`chosen` must be one of the action ids, got {action_id!r}")


class LoggedAction(BaseModel):
    """An action as it appears in the decision log."""

    model_config = ConfigDict(extra="ignore")
    id: ActionId
    features: dict[str, Any] = Field(default_factory=dict)


class LoggedDecision(BaseModel):
    """One line of the decision log (the brief's contract; unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    event_id: str
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    context: dict[str, Any] = Field(default_factory=dict)
    actions: list[LoggedAction]
    chosen: ActionId
    probability: float | None = None
    reward: float | None = None
    policy: str | None = None

    @field_validator("probability")
    @classmethod
    def _probability_in_range(cls, value: float | None) -> float | None:
        if value is not None and (math.isnan(value) or value < 0 or value > 1):
            raise ValueError(f"`probability` must be in [0, 1], got {value}")
        return value

    def typed_actions(self) -> list[Action]:
        return [Action(a.id, a.features) for a in self.actions]
