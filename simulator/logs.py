"""Reading decision logs as a stream: the contract format (JSON Lines or Parquet) and
Vowpal Wabbit's DSJSON (the Decision Service and hosted-personalizer log format).

``read_log(path)`` picks the reader by content, yields ``LoggedDecision`` objects one at a
time, and never loads the whole file.

DSJSON rules: ``c`` is the shared context and ``c._multi`` the candidate actions in their
original order; keys starting with ``_`` are metadata, not features; a list of objects is a
namespace written in parts and is merged; ``_labelIndex`` is the 0-based index of the chosen
action, ``_label_probability`` its logging probability, ``_label_cost`` a cost
(reward = -cost); an action's id is its ``_tag`` (else ``i.id``, else its 1-based position);
``EventId`` names the decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from learners.decision_log import read_jsonl, read_parquet
from learners.types import LoggedAction, LoggedDecision


def _features(obj: Any) -> Any:
    """DSJSON feature object -> our feature object (metadata dropped, split namespaces merged)."""
    if isinstance(obj, dict):
        return {k: _features(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list) and obj and all(isinstance(item, dict) for item in obj):
        merged: dict[str, Any] = {}
        for item in obj:
            merged.update(_features(item))
        return merged
    return obj


def _action_id(action: dict[str, Any], position: int) -> str:
    if "_tag" in action:
        return str(action["_tag"])
    inner = action.get("i")
    if isinstance(inner, dict) and "id" in inner:
        return str(inner["id"])
    return str(position + 1)


def dsjson_to_decision(record: dict[str, Any]) -> LoggedDecision | None:
    """One DSJSON line as a decision; ``None`` for lines that are not decisions."""
    context = record.get("c")
    if not isinstance(context, dict) or "_multi" not in context:
        return None
    multi = context["_multi"]
    actions = [LoggedAction(id=_action_id(a, i), features=_features(a) or {})
               for i, a in enumerate(multi)]
    if "_labelIndex" in record:
        chosen_index = int(record["_labelIndex"])
    elif "_label_Action" in record:
        chosen_index = int(record["_label_Action"]) - 1
    elif record.get("a"):
        chosen_index = int(record["a"][0]) - 1
    else:
        return None
    probability = record.get("_label_probability")
    if probability is None and record.get("p"):
        probability = record["p"][0]
    cost = record.get("_label_cost")
    return LoggedDecision.model_validate({
        "event_id": str(record.get("EventId") or record.get("event_id") or ""),
        "timestamp": record.get("Timestamp") or "1970-01-01T00:00:00Z",
        "context": {k: _features(v) for k, v in context.items() if not k.startswith("_")},
        "actions": actions,
        "chosen": actions[chosen_index].id,
        "probability": probability,
        "reward": None if cost is None or record.get("_skipLearn") else -float(cost),
        "policy": "dsjson",
    })


def read_dsjson(path: str | Path) -> Iterator[LoggedDecision]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                decision = dsjson_to_decision(json.loads(line))
            except (ValueError, KeyError, IndexError) as exc:
                raise ValueError(f"{path}:{number} is not a DSJSON decision: {exc}") from exc
            if decision is not None:
                yield decision


def log_format(path: str | Path) -> str:
    """``parquet``, ``dsjson`` or ``jsonl``, from the extension and the first line."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return "parquet"
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                first = json.loads(line)
                return "dsjson" if isinstance(first.get("c"), dict) else "jsonl"
    return "jsonl"


def read_log(path: str | Path) -> Iterator[LoggedDecision]:
    """Stream the decisions of a log in any supported format."""
    kind = log_format(path)
    if kind == "parquet":
        yield from read_parquet(path)
    elif kind == "dsjson":
        yield from read_dsjson(path)
    else:
        with open(path, encoding="utf-8") as handle:
            yield from read_jsonl(handle)
