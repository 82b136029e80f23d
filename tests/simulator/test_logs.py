"""Log readers: the contract format round-trips, real DSJSON files read by the format's rules."""

from __future__ import annotations

import json

import pytest

from learners.decision_log import write_log
from learners.types import LoggedDecision
from simulator.logs import log_format, read_log


def sample_decisions() -> list[LoggedDecision]:
    return [
        LoggedDecision(event_id=f"e{i}", timestamp="2026-11-24T10:00:00Z",
                       context={"user": "tom", "geo": {"city": "Paris"}},
                       actions=[{"id": i, "features": {"t": "x"}}, {"id": "b", "features": {}}],
                       chosen=i, probability=0.5, reward=None if i == 2 else 1.0,
                       policy="vw:epsilon")
        for i in range(3)
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_contract_log_round_trips(tmp_path, suffix: str) -> None:
    path = tmp_path / f"log{suffix}"
    assert write_log(sample_decisions(), path) == 3
    back = list(read_log(path))
    assert [d.model_dump() for d in back] == [d.model_dump() for d in sample_decisions()]


def test_jsonl_lines_carry_exactly_the_contract_fields(tmp_path) -> None:
    path = tmp_path / "log.jsonl"
    write_log(sample_decisions(), path)
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"event_id", "timestamp", "context", "actions", "chosen",
                          "probability", "reward", "policy"}
    assert first["timestamp"].startswith("2026-11-24T10:00:00")


def test_real_decision_service_log(dsjson_dir) -> None:
    path = dsjson_dir / "decisionservice.json"
    assert log_format(path) == "dsjson"
    decisions = list(read_log(path))
    assert len(decisions) == 3
    first = decisions[0]
    raw = json.loads(path.read_text().splitlines()[0])
    assert first.event_id == raw["EventId"]
    assert first.chosen == raw["c"]["_multi"][raw["_labelIndex"]]["_tag"]
    assert first.probability == pytest.approx(raw["_label_probability"])
    assert first.reward == -raw["_label_cost"]
    assert len(first.actions) == 12
    text = json.dumps(first.context) + json.dumps([a.features for a in first.actions])
    assert '"_' not in text  # metadata keys are not features
    assert first.context["Geo"]["city"] == "New Orleans"


def test_real_coffee_logs_in_both_layouts(dsjson_dir) -> None:
    nested = list(read_log(dsjson_dir / "dsjson_cb.json"))
    flat = list(read_log(dsjson_dir / "dsjson_cb_default_ns.json"))
    assert len(nested) == 23 and len(flat) == 4
    assert nested[0].context == {"FromUrl": {"timeofday": "Afternoon", "weather": "Sunny",
                                             "name": "Cathy"}}
    assert flat[0].context == {"timeofday": "Afternoon", "weather": "Sunny", "name": "Cathy"}
    assert [a.id for a in nested[0].actions] == ["Cappucino", "Cold brew", "Iced mocha", "Latte"]
    assert nested[0].chosen == "Latte" and nested[1].reward == 1.0
