"""Simulated environments: a stream of rounds whose rewards are known for every action.

Each ``Round`` carries the context, the candidate actions and the *expected* reward of every
action, so regret is exact (pseudo-regret against the best expected reward). The realised
reward of each action is drawn from a random source owned by the round (common random
numbers), so two policies run on the same seed face the same luck and their difference can
be paired.

Environments are named by specs like policies: ``personalization?swap_at=0.5``, ``linear``,
``classification:digits``.

>>> env = make_environment("personalization")
>>> first = next(env.rounds(1, seed=0))
>>> sorted(first.context), [a["id"] for a in first.actions][:3]
(['time_of_day', 'user'], ['politics', 'sports', 'music'])
>>> round(max(first.expected), 2)
0.8
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from learners import SpecError, parse_spec


@dataclass
class Round:
    """One decision to make, with what every action would have earned."""

    context: dict[str, Any]
    actions: list[dict[str, Any]]
    expected: list[float]
    noise: str = "bernoulli"  # "bernoulli": reward 1 with probability expected; "gaussian"
    sigma: float = 0.0
    seed: int = 0
    _draws: dict[int, float] = field(default_factory=dict, repr=False)

    def reward(self, index: int) -> float:
        """Realised reward of action ``index`` (the same every time it is asked)."""
        if index not in self._draws:
            rng = random.Random(self.seed * 1_000_003 + index)
            if self.noise == "bernoulli":
                self._draws[index] = 1.0 if rng.random() < self.expected[index] else 0.0
            else:
                self._draws[index] = self.expected[index] + rng.gauss(0.0, self.sigma)
        return self._draws[index]

    @property
    def best(self) -> float:
        return max(self.expected)


class Environment:
    """Base class: ``rounds(steps, seed)`` yields ``Round`` objects."""

    name: ClassVar[str] = ""

    def rounds(self, steps: int, seed: int) -> Iterator[Round]:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        return self.name


class Personalization(Environment):
    """Vowpal Wabbit's content-personalization simulation.

    Two users (Tom, Anna), two times of day, seven article topics. Each user likes one topic
    per time of day: it is clicked with probability ``like`` and every other topic with
    ``other``. With ``swap_at`` (a fraction of the run), tastes change to the tutorial's second
    set midway, so adaptation can be measured.
    """

    name = "personalization"
    USERS = ("Tom", "Anna")
    TIMES = ("morning", "afternoon")
    TOPICS = ("politics", "sports", "music", "food", "finance", "health", "camping")
    TASTES: ClassVar[dict[tuple[str, str], str]] = {
        ("Tom", "morning"): "politics", ("Tom", "afternoon"): "music",
        ("Anna", "morning"): "sports", ("Anna", "afternoon"): "politics",
    }
    SWAPPED: ClassVar[dict[tuple[str, str], str]] = {
        ("Tom", "morning"): "politics", ("Tom", "afternoon"): "sports",
        ("Anna", "morning"): "sports", ("Anna", "afternoon"): "sports",
    }

    def __init__(self, swap_at: float | None = None, like: float = 0.8, other: float = 0.1):
        if swap_at is not None and not 0.0 < swap_at < 1.0:
            raise SpecError(f"`swap_at` must be a fraction in (0, 1), got {swap_at}")
        self.swap_at = swap_at
        self.like = like
        self.other = other
        self.actions = [{"id": topic, "features": {"topic": topic}} for topic in self.TOPICS]

    @property
    def spec(self) -> str:
        return f"{self.name}?swap_at={self.swap_at}" if self.swap_at else self.name

    def rounds(self, steps: int, seed: int) -> Iterator[Round]:
        rng = random.Random(seed)
        swap_step = int(steps * self.swap_at) if self.swap_at else steps + 1
        for step in range(steps):
            user, time = rng.choice(self.USERS), rng.choice(self.TIMES)
            tastes = self.SWAPPED if step >= swap_step else self.TASTES
            liked = tastes[(user, time)]
            yield Round(
                context={"user": user, "time_of_day": time},
                actions=self.actions,
                expected=[self.like if t == liked else self.other for t in self.TOPICS],
                seed=rng.getrandbits(48),
            )


class Linear(Environment):
    """Synthetic linear rewards: ``r = context' W action + N(0, sigma)``, K actions whose
    features are drawn anew every round, so the optimum is known exactly each round."""

    name = "linear"

    def __init__(
        self, n_actions: int = 10, context_dim: int = 5, action_dim: int = 5,
        sigma: float = 0.1, problem_seed: int = 1234,
    ):
        if n_actions < 2:
            raise SpecError(f"`n_actions` must be >= 2, got {n_actions}")
        self.n_actions, self.context_dim, self.action_dim = n_actions, context_dim, action_dim
        self.sigma = sigma
        rng = random.Random(problem_seed)
        scale = 1.0 / math.sqrt(context_dim * action_dim)
        self.weights = [
            [rng.gauss(0, scale) for _ in range(action_dim)] for _ in range(context_dim)
        ]

    def rounds(self, steps: int, seed: int) -> Iterator[Round]:
        rng = random.Random(seed)
        for _ in range(steps):
            ctx = [rng.uniform(-1, 1) for _ in range(self.context_dim)]
            feats = [[rng.uniform(-1, 1) for _ in range(self.action_dim)]
                     for _ in range(self.n_actions)]
            projected = [sum(ctx[i] * self.weights[i][j] for i in range(self.context_dim))
                         for j in range(self.action_dim)]
            yield Round(
                context={f"x{i}": v for i, v in enumerate(ctx)},
                actions=[{"id": f"a{k}", "features": {f"f{j}": v for j, v in enumerate(f)}}
                         for k, f in enumerate(feats)],
                expected=[sum(p * v for p, v in zip(projected, f, strict=True)) for f in feats],
                noise="gaussian", sigma=self.sigma, seed=rng.getrandbits(48),
            )


class Classification(Environment):
    """A multiclass data set as a bandit: the classes are the actions, reward 1 when the
    chosen class is the label. Data sets ship inside scikit-learn (no download):
    ``digits``, ``wine``, ``iris``, ``breast_cancer``."""

    name = "classification"
    DATASETS = ("digits", "wine", "iris", "breast_cancer")

    def __init__(self, dataset: str = "digits"):
        if dataset not in self.DATASETS:
            raise SpecError(f"`dataset` must be one of {list(self.DATASETS)}, got {dataset!r}")
        from sklearn import datasets

        data = getattr(datasets, f"load_{dataset}")()
        self.dataset = dataset
        x = data.data
        # Scale each column to [0, 1] so learners with a fixed learning rate behave.
        low, high = x.min(axis=0), x.max(axis=0)
        span = (high - low)
        span[span == 0] = 1.0
        self._rows = ((x - low) / span).round(4).tolist()
        self._labels = [int(v) for v in data.target]
        self.classes = sorted(set(self._labels))
        self.actions = [{"id": str(c), "features": {}} for c in self.classes]

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.dataset}"

    def rounds(self, steps: int, seed: int) -> Iterator[Round]:
        rng = random.Random(seed)
        order = list(range(len(self._rows)))
        position = len(order)
        for _ in range(steps):
            if position == len(order):
                rng.shuffle(order)
                position = 0
            row = order[position]
            position += 1
            label = self._labels[row]
            yield Round(
                context={f"p{i}": v for i, v in enumerate(self._rows[row]) if v},
                actions=self.actions,
                expected=[1.0 if c == label else 0.0 for c in self.classes],
                seed=rng.getrandbits(48),
            )


ENVIRONMENTS: dict[str, type[Environment]] = {
    "personalization": Personalization,
    "linear": Linear,
    "classification": Classification,
}


def make_environment(spec: str) -> Environment:
    """``personalization?swap_at=0.5``, ``linear?n_actions=20``, ``classification:digits``."""
    name, params = parse_spec(spec)
    base, _, variant = name.partition(":")
    cls = ENVIRONMENTS.get(base)
    if cls is None:
        raise SpecError(f"unknown environment `{name}`; known: {', '.join(ENVIRONMENTS)}")
    if variant:
        if cls is not Classification:
            raise SpecError(f"environment `{base}` takes no `:{variant}` suffix")
        params["dataset"] = variant
    try:
        return cls(**params)
    except TypeError as exc:
        raise SpecError(f"bad parameters for environment `{name}`: {exc}") from exc
