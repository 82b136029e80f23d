"""Turning a policy's distribution into a decision: the one sampling helper.

The service, the simulator and the logs all use these functions, so the probability that is
logged is exactly the one the choice was drawn with.

>>> pmf = with_floor([1.0, 0.0, 0.0, 0.0], floor=0.04)
>>> [round(p, 3) for p in pmf]
[0.97, 0.01, 0.01, 0.01]
>>> sample(pmf, 0.5)
(0, 0.97)
>>> sample(pmf, 0.975)
(1, 0.01)
>>> seed_from_event_id("evt-1") == seed_from_event_id("evt-1")
True
>>> preference_order([0.1, 0.6, 0.3], scores=[0.0, 0.0, 0.0], chosen=2)
[2, 1, 0]
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from learners.errors import LearnerError


def seed_from_event_id(event_id: str, salt: str = "") -> int:
    """A 64-bit seed derived from an event id: the same id always gives the same decision."""
    digest = hashlib.blake2b(f"{salt}\x00{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rng_for(event_id: str | None, seed: int | None, fallback: random.Random) -> random.Random:
    """The random source of one decision: from the event id, else the seed, else the policy's."""
    if event_id is not None:
        return random.Random(seed_from_event_id(event_id))
    if seed is not None:
        return random.Random(seed)
    return fallback


def with_floor(pmf: Sequence[float], floor: float) -> list[float]:
    """Mix ``floor`` of the mass uniformly so every action keeps probability >= floor / K.

    This keeps logged data usable for off-policy evaluation of any other policy.
    """
    total = math.fsum(pmf)
    if not total > 0 or not math.isfinite(total):
        raise LearnerError(f"a policy distribution must have positive finite mass, got {total}")
    k = len(pmf)
    if floor <= 0:
        return [p / total for p in pmf]
    share = floor / k
    return [(1.0 - floor) * p / total + share for p in pmf]


def sample(pmf: Sequence[float], u: float) -> tuple[int, float]:
    """Inverse-CDF draw: the index of the chosen action and its probability.

    Zero-probability actions are never returned, even when rounding leaves ``u`` past the end.
    """
    cumulative = 0.0
    last = -1
    for i, p in enumerate(pmf):
        if p <= 0.0:
            continue
        last = i
        cumulative += p
        if u < cumulative:
            return i, p
    if last < 0:
        raise LearnerError("cannot sample from a distribution with no positive probability")
    return last, pmf[last]


def preference_order(pmf: Sequence[float], scores: Sequence[float], chosen: int) -> list[int]:
    """``chosen`` first, then by probability, ties broken by score, then by candidate order."""
    rest = sorted(
        (i for i in range(len(pmf)) if i != chosen),
        key=lambda i: (-pmf[i], -scores[i], i),
    )
    return [chosen, *rest]


def greedy_pmf(scores: Sequence[float], epsilon: float) -> list[float]:
    """Epsilon-greedy over scores; ties for the best share the greedy mass."""
    k = len(scores)
    best = max(scores)
    winners = [i for i, s in enumerate(scores) if s == best]
    pmf = [epsilon / k] * k
    for i in winners:
        pmf[i] += (1.0 - epsilon) / len(winners)
    return pmf
