"""The one place that writes Vowpal Wabbit text, and the one place where reward becomes cost.

VW's text format gives a space, ``|`` and ``:`` meaning, so every namespace and feature name
is escaped (percent-style, which keeps distinct names distinct). Context namespaces are
written with the prefix ``c``, action namespaces with ``a`` and the action id in namespace
``i``, so the default interactions ``ca`` and ``ci`` cross every context feature with every
action feature and with the action's identity.

>>> shared, lines = adf_lines({"": [("user=Tom Smith", 1.0)], "geo": [("lat", 48.5)]},
...                           [{"": [("topic=a|b", 1.0)]}, {}], ["x:1", 7])
>>> shared
'shared |c user=Tom%20Smith |c_geo lat:48.5'
>>> lines
['|a topic=a%7Cb |i id=x%3A1', '|i id=7']
>>> with_label(lines, 1, reward=1.0, probability=0.25)[1]
'0:-1.0:0.25 |i id=7'
>>> cost_from_reward(0.5)
-0.5
"""

from __future__ import annotations

from learners.features import Namespaces

CONTEXT_PREFIX = "c"
ACTION_PREFIX = "a"
ID_NAMESPACE = "i"
DEFAULT_INTERACTIONS = ("ca", "ci")

_ESCAPES = str.maketrans(
    {"%": "%25", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D", "|": "%7C", ":": "%3A"}
)


def escape(token: str) -> str:
    """Make a name safe for VW text without merging two different names.

    >>> escape("New Orleans|LA:1%")
    'New%20Orleans%7CLA%3A1%25'
    """
    # Names repeat across requests (``x3``, ``topic=sports``), so remember the answers; the
    # cache is dropped whole when it grows large, which keeps memory bounded.
    cached = _escaped.get(token)
    if cached is None:
        if len(_escaped) >= _ESCAPE_CACHE_SIZE:
            _escaped.clear()
        cached = _escaped[token] = token.translate(_ESCAPES)
    return cached


_ESCAPE_CACHE_SIZE = 200_000
_escaped: dict[str, str] = {}


def cost_from_reward(reward: float) -> float:
    """VW minimises cost; raybandit maximises reward. This is the only conversion."""
    return -float(reward)


def _namespaces_text(prefix: str, namespaces: Namespaces) -> str:
    parts = []
    for namespace, features in namespaces.items():
        parts.append(f"|{prefix}_{escape(namespace)}" if namespace else f"|{prefix}")
        for name, value in features:
            parts.append(escape(name) if value == 1.0 else f"{escape(name)}:{value!r}")
    return " ".join(parts)


def context_line(context: Namespaces) -> str:
    text = _namespaces_text(CONTEXT_PREFIX, context)
    return f"shared {text}" if text else f"shared |{CONTEXT_PREFIX}"


def action_line(features: Namespaces, action_id: object, with_id: bool = True) -> str:
    text = _namespaces_text(ACTION_PREFIX, features)
    if with_id:
        id_part = f"|{ID_NAMESPACE} id={escape(str(action_id))}"
        return f"{text} {id_part}" if text else id_part
    return text or f"|{ACTION_PREFIX}"


def adf_lines(
    context: Namespaces,
    actions: list[Namespaces],
    action_ids: list[object],
    with_id: bool = True,
) -> tuple[str, list[str]]:
    """The shared line and one line per action, unlabelled, in candidate order."""
    return context_line(context), [
        action_line(features, action_id, with_id)
        for features, action_id in zip(actions, action_ids, strict=True)
    ]


def with_label(lines: list[str], chosen: int, reward: float, probability: float) -> list[str]:
    """Copy of the action lines with the CB label ``0:cost:probability`` on the chosen one."""
    labelled = list(lines)
    labelled[chosen] = f"0:{cost_from_reward(reward)!r}:{probability!r} {lines[chosen]}"
    return labelled
