"""Policy specs: short strings such as ``vw:epsilon?epsilon=0.05`` that name a policy.

``name`` or ``name?param=value&param=value``; values are read as booleans (true/false),
integers, floats, or strings. Parameters are the policy class's constructor arguments; for
``vw:*`` any other parameter is passed to Vowpal Wabbit as an argument of that name.

>>> parse_spec("vw:epsilon?epsilon=0.05&id_feature=false")
('vw:epsilon', {'epsilon': 0.05, 'id_feature': False})
>>> make_policy("river:linucb?alpha=2").alpha
2.0
>>> make_policy("vw:nope")
Traceback (most recent call last):
...
learners.errors.SpecError: unknown policy `vw:nope`; known: fixed, popularity, river:epsilon, ...
>>> make_policy("popularity?epsilom=0.1")
Traceback (most recent call last):
...
learners.errors.SpecError: policy `popularity` has no parameter `epsilom`; it takes: bonus, ...
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

from learners.errors import SpecError
from learners.policy import Policy, constructor_params, read_header
from learners.vw import ALGORITHMS, VWPolicy

_CLASSES = {
    "uniform": "learners.baselines:Uniform",
    "fixed": "learners.baselines:Fixed",
    "popularity": "learners.baselines:Popularity",
    "river:epsilon": "learners.river:RiverEpsilon",
    "river:linucb": "learners.river:RiverLinUCB",
    "river:thompson": "learners.river:RiverThompson",
    **{f"vw:{name}": "learners.vw:VWPolicy" for name in ALGORITHMS},
}


class _Registry(Mapping[str, type[Policy]]):
    """Policy name -> class, imported on first use: River pulls in scipy and pandas (~1.6 s
    and ~70 MB per process), which a service running VW policies never needs."""

    def __getitem__(self, name: str) -> type[Policy]:
        module, _, attr = _CLASSES[name].partition(":")
        cls: type[Policy] = getattr(importlib.import_module(module), attr)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


POLICIES: Mapping[str, type[Policy]] = _Registry()


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split a spec into its policy name and typed parameters."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"a policy spec must be a non-empty string, got {spec!r}")
    name, _, query = spec.strip().partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise SpecError(f"cannot read the parameters of `{spec}`: {exc}") from exc
    return name, {key: _value(value) for key, value in pairs}


def make_policy(spec: str, **overrides: Any) -> Policy:
    """Build the policy a spec names; keyword ``overrides`` (e.g. ``seed=1``) win over it."""
    name, params = parse_spec(spec)
    params.update(overrides)
    cls = POLICIES.get(name)
    if cls is None:
        raise SpecError(f"unknown policy `{name}`; known: {', '.join(sorted(POLICIES))}")
    accepted = set(constructor_params(cls))
    if cls is VWPolicy:
        params["algorithm"] = name.split(":", 1)[1]
        extra = {k: params.pop(k) for k in list(params) if k not in accepted}
        params["vw_args"] = {**extra, **params.get("vw_args", {})}
    else:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise SpecError(
                f"policy `{name}` has no parameter `{unknown[0]}`; "
                f"it takes: {', '.join(sorted(accepted))}"
            )
    try:
        policy = cls(**params)
    except TypeError as exc:
        raise SpecError(f"bad parameters for `{name}`: {exc}") from exc
    policy.spec = spec.strip()
    return policy


def load_policy(data: bytes) -> Policy:
    """Rebuild a policy from ``Policy.save`` bytes alone (the spec travels in the header)."""
    header, _ = read_header(data)
    return make_policy(header["spec"]).load(data)
