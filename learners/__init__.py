"""raybandit learners: contextual-bandit policies behind one small interface.

>>> from learners import make_policy
>>> policy = make_policy("vw:squarecb", seed=7)
>>> r = policy.rank({"user": "anna"}, [{"id": "a", "features": {"topic": "music"}},
...                                    {"id": "b", "features": {"topic": "sports"}}])
>>> r.chosen in ("a", "b"), round(sum(item.probability for item in r.ranking), 6)
(True, 1.0)
>>> policy.learn({"user": "anna"}, r.actions, r.chosen, r.probability, reward=1.0)
>>> restored = make_policy("vw:squarecb").load(policy.save())
>>> restored.n_updates
1
"""

from learners.errors import (
    ActionError,
    FeatureError,
    LearnerError,
    ModelFormatError,
    SpecError,
)
from learners.features import featurize, flatten
from learners.policy import Policy
from learners.sampling import sample, seed_from_event_id, with_floor
from learners.specs import POLICIES, load_policy, make_policy, parse_spec
from learners.types import Action, LoggedDecision, RankedAction, Ranking

__all__ = [
    "POLICIES",
    "Action",
    "ActionError",
    "FeatureError",
    "LearnerError",
    "LoggedDecision",
    "ModelFormatError",
    "Policy",
    "RankedAction",
    "Ranking",
    "SpecError",
    "featurize",
    "flatten",
    "load_policy",
    "make_policy",
    "parse_spec",
    "sample",
    "seed_from_event_id",
    "with_floor",
]
