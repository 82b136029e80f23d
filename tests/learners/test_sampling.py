from __future__ import annotations

import random
from collections import Counter

from learners.sampling import sample, seed_from_event_id, with_floor


def test_sampling_frequencies_match_the_pmf() -> None:
    pmf = [0.5, 0.3, 0.15, 0.05, 0.0]
    rng = random.Random(0)
    n = 40_000
    counts = Counter(sample(pmf, rng.random())[0] for _ in range(n))
    assert counts[4] == 0
    for i, p in enumerate(pmf[:4]):
        assert abs(counts[i] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9


def test_sample_returns_the_probability_of_what_it_chose() -> None:
    pmf = with_floor([0.0, 1.0, 0.0], 0.03)
    for u in (0.0, 0.005, 0.5, 0.999999):
        index, probability = sample(pmf, u)
        assert probability == pmf[index] > 0


def test_event_id_seed_is_stable_and_spread() -> None:
    assert seed_from_event_id("abc") == seed_from_event_id("abc")
    assert len({seed_from_event_id(str(i)) for i in range(1000)}) == 1000
