"""The one featurizer: turns a context or action ``features`` object into namespaced features.

Rules (the brief's, shared by serving and the simulator):

* a number is a numeric feature ``name:value``;
* a string is categorical, ``name=value`` with value 1;
* a boolean is 0/1;
* a list of strings is a set: one ``name=item`` feature per item (a list of numbers is a
  dense vector ``name[i]``);
* a nested object is a namespace (deeper objects are flattened into it as ``outer.inner``);
* ``None`` and zero-valued features are left out (they carry no signal for linear learners).

>>> featurize({"age": 31, "city": "Paris", "member": True, "tags": ["a", "b"],
...            "geo": {"country": "FR", "pos": {"lat": 48.8}}})
{'': [('age', 31.0), ('city=Paris', 1.0), ('member', 1.0), ('tags=a', 1.0), ('tags=b', 1.0)],
 'geo': [('country=FR', 1.0), ('pos.lat', 48.8)]}
>>> flatten(featurize({"city": "Paris", "geo": {"country": "FR"}}))
{'city=Paris': 1.0, 'geo.country=FR': 1.0}
>>> featurize({"x": float("nan")})
Traceback (most recent call last):
...
learners.errors.FeatureError: feature `x` must be a finite number, got nan
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from learners.errors import FeatureError

Namespaces = dict[str, list[tuple[str, float]]]
"""Namespace name ("" for top-level features) -> list of (feature name, value)."""

DEFAULT_NAMESPACE = ""


def featurize(obj: Mapping[str, Any] | None) -> Namespaces:
    """Apply the feature rules to a context or an action's ``features``."""
    namespaces: Namespaces = {}
    if not obj:
        return namespaces
    if not isinstance(obj, Mapping):
        raise FeatureError(f"features must be an object, got {type(obj).__name__}")
    top: list[tuple[str, float]] = []
    for key, value in obj.items():
        # Fast paths for the common flat cases; everything else goes through _add_value.
        kind = type(value)
        if kind is str:
            top.append((f"{key}={value}", 1.0))
        elif kind is float and value != 0.0 and value - value == 0.0:  # finite, non-zero
            top.append((str(key), value))
        elif isinstance(value, Mapping):
            inner: list[tuple[str, float]] = []
            _add_object(inner, "", value)
            if inner:
                namespaces.setdefault(str(key), []).extend(inner)
        else:
            _add_value(top, str(key), value)
    if top:
        return {DEFAULT_NAMESPACE: top, **namespaces}
    return namespaces


def count_features(obj: Mapping[str, Any] | None) -> int:
    """How many features ``featurize(obj)`` yields, without building their names: the
    service checks its per-request limit on every request, before the policy featurizes.
    Values ``featurize`` would reject are counted as one; it reports them itself.

    >>> count_features({"age": 31, "zero": 0, "tags": ["a", "b"], "geo": {"lat": 48.8},
    ...                 "member": False, "none": None})
    4
    """
    if not obj:
        return 0
    n = 0
    for value in obj.values():
        kind = type(value)
        if kind is str:
            n += 1
        elif kind is float or kind is int or kind is bool:
            n += value != 0  # zero and False are left out; NaN counts (and is refused)
        elif value is None:
            continue
        elif isinstance(value, Mapping):
            n += count_features(value)
        elif isinstance(value, list | tuple | set | frozenset):
            n += sum(1 for item in value if type(item) is str or item != 0)
        else:
            n += 1
    return n


def _add_object(out: list[tuple[str, float]], prefix: str, obj: Mapping[str, Any]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _add_object(out, f"{name}.", value)
        else:
            _add_value(out, name, value)


def _add_value(out: list[tuple[str, float]], name: str, value: Any) -> None:
    # bool before int: bool is a subclass of int.
    if value is None or value is False:
        return
    if value is True:
        out.append((name, 1.0))
    elif isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise FeatureError(f"feature `{name}` must be a finite number, got {value}")
        if number != 0.0:
            out.append((name, number))
    elif isinstance(value, str):
        out.append((f"{name}={value}", 1.0))
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append((f"{name}={item}", 1.0))
            elif isinstance(item, int | float):  # bool is an int too
                _add_value(out, f"{name}[{i}]", item)
            else:
                raise FeatureError(
                    f"feature `{name}` must list strings or numbers, got {type(item).__name__}"
                )
    else:
        raise FeatureError(
            f"feature `{name}` must be a number, string, boolean, list or object, "
            f"got {type(value).__name__}"
        )


def flatten(namespaces: Namespaces) -> dict[str, float]:
    """One flat dict (River's input): namespaced names become ``namespace.name``."""
    flat: dict[str, float] = {}
    for namespace, features in namespaces.items():
        prefix = f"{namespace}." if namespace else ""
        for name, value in features:
            key = prefix + name
            flat[key] = flat.get(key, 0.0) + value
    return flat
