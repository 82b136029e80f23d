from __future__ import annotations

import pytest

from learners import SpecError, make_policy, parse_spec


def test_parameters_are_typed_and_reach_the_policy() -> None:
    assert parse_spec("river:thompson?n_draws=10&noise=0.9&mode=disjoint") == (
        "river:thompson", {"n_draws": 10, "noise": 0.9, "mode": "disjoint"})
    policy = make_policy("vw:bag?bag=3&learning_rate=0.3&floor=0.1", seed=4)
    assert policy.vw_args == {"bag": 3, "learning_rate": 0.3}
    assert policy.floor == 0.1 and policy.seed == 4
    assert policy.spec == "vw:bag?bag=3&learning_rate=0.3&floor=0.1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "non-empty"),
        ("bandit", "unknown policy `bandit`"),
        ("river:linucb?alpah=1", "has no parameter `alpah`"),
        ("river:epsilon?epsilon=3", "`epsilon` must be in"),
        ("river:linucb?mode=both", "`mode` must be one of"),
        ("vw:epsilon?no_such_vw_option=1", "Vowpal Wabbit rejected"),
        ("uniform?floor=1.5", "`floor` must be in"),
    ],
)
def test_bad_specs_raise_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_policy(spec)
