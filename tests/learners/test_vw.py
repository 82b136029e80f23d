from __future__ import annotations

import random

import pytest
from vowpalwabbit import Workspace

from learners import SpecError, load_policy, make_policy, vw, with_floor
from learners.types import as_actions
from learners.vw import ALGORITHMS, VWPolicy
from learners.vw_format import with_label


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


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_direct_vw_calls_match_pyvw_step_for_step(algorithm: str) -> None:
    """The policies call VW's C++ binding directly (pyvw's Python wrapping is most of the cost);
    the same stream through pyvw's own predict/learn must give the same pmf at every step."""
    policy = make_policy(f"vw:{algorithm}", seed=3)
    assert isinstance(policy, VWPolicy)
    reference = Workspace(**policy._arguments())
    rng = random.Random(3)
    items = as_actions([{"id": f"i{k}", "features": {"topic": f"t{k % 3}"}} for k in range(6)])
    for step in range(150):
        context = {"user": f"u{rng.randrange(4)}", "hour": float(rng.randrange(24))}
        shared, lines = policy._prepare(context, items)
        ours = policy.distribution(context, items)
        theirs = with_floor(list(reference.predict([shared, *lines])), policy.floor)
        assert ours == pytest.approx(theirs, abs=1e-7), step
        chosen = rng.randrange(len(items))
        reward = float(chosen % 3 == int(context["user"][1]) % 3)
        policy.learn(context, items, items[chosen].id, ours[chosen], reward)
        reference.learn([shared, *with_label(lines, chosen, reward, ours[chosen])])
    assert policy.distribution(context, items) != [1 / 6] * 6  # it did learn something


def test_loading_a_model_builds_one_workspace_and_bad_arguments_still_fail_early(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranking replicas load every published version: the loaded policy must not first build
    an empty workspace only to replace it, nor rebuild the VW text of actions already seen.
    VW arguments are still checked at construction, every time they are bad."""
    trained = make_policy("vw:squarecb", seed=3)
    actions = [{"id": i, "features": {"x": i}} for i in range(3)]
    for step in range(50):
        r = trained.rank({"u": step % 2}, actions)
        trained.learn({"u": step % 2}, actions, r.chosen, r.probability, float(r.chosen == 1))
    saved = trained.save()
    make_policy("vw:squarecb")  # as a replica does before its first reload
    built: list[str | None] = []
    original = VWPolicy._new_workspace

    def counting(self: VWPolicy, model_path: str | None = None) -> Workspace:
        built.append(model_path)
        return original(self, model_path)

    monkeypatch.setattr(VWPolicy, "_new_workspace", counting)
    texts: list[tuple] = []
    monkeypatch.setattr(vw, "action_line", lambda *args: texts.append(args) or "")
    loaded = load_policy(saved)
    assert len(built) == 1 and built[0] is not None  # only the one that reads the model
    loaded.rank({"u": 1}, actions)
    assert texts == []  # it reuses the VW text its predecessor built
    assert loaded.rank({"u": 1}, actions, event_id="e") == trained.rank({"u": 1}, actions,
                                                                        event_id="e")
    fresh = make_policy("vw:squarecb", seed=3)  # builds its workspace when first used
    assert fresh.distribution({"u": 1}, actions) == pytest.approx([1 / 3] * 3)
    for _ in range(2):
        with pytest.raises(SpecError):
            make_policy("vw:epsilon?no_such_vw_option=1")
