from __future__ import annotations

import random

import pytest

from learners import FeatureError, featurize, flatten
from learners.features import count_features
from learners.vw_format import adf_lines, escape


def test_feature_rules() -> None:
    ns = featurize({
        "n": 2, "f": 0.5, "zero": 0, "s": "x", "yes": True, "no": False, "none": None,
        "set": ["p", "q"], "vec": [1.5, 0, 2], "obj": {"k": "v", "deep": {"m": 3}},
    })
    assert ns[""] == [("n", 2.0), ("f", 0.5), ("s=x", 1.0), ("yes", 1.0), ("set=p", 1.0),
                      ("set=q", 1.0), ("vec[0]", 1.5), ("vec[2]", 2.0)]
    assert ns["obj"] == [("k=v", 1.0), ("deep.m", 3.0)]
    assert flatten(ns)["obj.deep.m"] == 3.0


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), [{"a": 1}], object()])
def test_unrepresentable_values_raise(bad) -> None:
    with pytest.raises(FeatureError, match="feature `x`"):
        featurize({"x": bad})


def test_escaping_keeps_vw_lines_well_formed_and_names_distinct() -> None:
    tricky = {"a b": "c|d", "e:f": "g h", "pct": "100%"}
    shared, (line,) = adf_lines(featurize(tricky), [featurize(tricky)], ["id with space"])
    for text in (shared, line):
        namespaces = text.split("|")[1:]
        for part in namespaces:
            tokens = part.split()
            # each token is a namespace name or feature[:value]; no stray separators
            assert all(token.count(":") <= 1 for token in tokens)
    assert "a%20b=c%7Cd" in shared and "e%3Af=g%20h" in shared and "pct=100%25" in shared
    assert line.endswith("|i id=id%20with%20space")
    assert escape("a_b") != escape("a b") != escape("a%20b")


def test_escaped_lines_are_read_by_vw_as_distinct_features() -> None:
    from vowpalwabbit import Workspace

    ws = Workspace(quiet=True)
    ws.learn("1 | " + escape("a b") + ":2")
    ws.learn("1 | " + escape("a|b") + ":3")
    assert ws.num_weights() > 0
    a_b = ws.get_weight_from_name(escape("a b"), " ")
    a_pipe_b = ws.get_weight_from_name(escape("a|b"), " ")
    assert a_b != 0.0 and a_pipe_b != 0.0 and a_b != a_pipe_b


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 2 else 8)
    if kind == 0:
        return rng.choice([0, 0.0, 3, -1.5, 1e-9])
    if kind == 1:
        return rng.choice(["x", "", "a b"])
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return None
    if kind == 4:
        return [rng.choice(["p", "q", "r"]) for _ in range(rng.randrange(4))]
    if kind == 5:
        return [rng.choice([0, 1, 2.5, True, False]) for _ in range(rng.randrange(4))]
    if kind in (6, 7):
        return rng.uniform(-2, 2)
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def test_count_features_agrees_with_featurize() -> None:
    """The service's request limit counts without featurizing; it must count the same."""
    rng = random.Random(7)
    for _ in range(2000):
        obj = {f"f{i}": _random_value(rng) for i in range(rng.randrange(6))}
        assert count_features(obj) == sum(len(f) for f in featurize(obj).values()), obj
