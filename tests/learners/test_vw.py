from __future__ import annotations

from learners import make_policy
from learners.types import as_actions


def test_vw_text_cache_follows_content_not_identity() -> None:
    policy = make_policy("vw:epsilon")
    context = {"user": "tom", "hour": 9.0}
    actions = as_actions([{"id": "a", "features": {"topic": "news"}}])
    shared, lines = policy._prepare(context, actions)
    assert shared == "shared |c user=tom hour:9.0" and lines == ["|a topic=news |i id=a"]
    context["user"] = "anna"
    actions[0].features["topic"] = "music"  # type: ignore[index]
    shared, lines = policy._prepare(context, actions)
    assert shared == "shared |c user=anna hour:9.0" and lines == ["|a topic=music |i id=a"]
    # nested (unhashable) features are built every time, not cached
    nested = {"geo": {"city": "Paris"}, "tags": ["x"]}
    assert policy._prepare(nested, actions)[0] == "shared |c tags=x |c_geo city=Paris"


def test_learning_changes_the_vw_model() -> None:
    policy = make_policy("vw:epsilon?epsilon=0.0&floor=0", seed=1)
    actions = [{"id": "a"}, {"id": "b"}]
    before = policy.distribution({"u": "x"}, actions)
    for _ in range(20):
        policy.learn({"u": "x"}, actions, "b", 0.5, 1.0)
    after = policy.distribution({"u": "x"}, actions)
    assert before == [0.5, 0.5] and after == [0.0, 1.0]
