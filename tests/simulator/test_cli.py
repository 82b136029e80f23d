"""The `raybandit simulate` and `raybandit replay` commands, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from learners.decision_log import write_log
from serve.redis_server import free_port
from tests.simulator.test_estimators import _uniform_log


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raybandit.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_simulate_json_has_the_contract_keys(tmp_path) -> None:
    done = run("simulate", "--env", "personalization", "--policy", "uniform",
               "--policy", "vw:squarecb", "--steps", "600", "--seeds", "2", "--no-ray",
               "--out", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)  # one JSON object, nothing else
    assert {"env", "steps", "results"} <= set(payload)
    assert payload["env"] == "personalization" and payload["steps"] == 600
    assert len(payload["results"]) == 4
    for row in payload["results"]:
        assert set(row) == {"policy", "seed", "mean_reward", "cumulative_regret",
                            "optimal_mean_reward"}
    by = {(r["policy"], r["seed"]): r for r in payload["results"]}
    assert by[("vw:squarecb", 0)]["mean_reward"] > by[("uniform", 0)]["mean_reward"]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results.json").read_text())["results"] == payload["results"]


def test_replay_json_has_the_contract_keys(tmp_path) -> None:
    log = tmp_path / "log.parquet"
    write_log(_uniform_log(500, seed=3), log)
    done = run("replay", str(log), "--policy", "uniform", "--policy", "vw:epsilon",
               "--estimator", "ips", "--estimator", "dr", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["log"] == str(log) and payload["n_events"] == 500
    assert [(r["policy"], r["estimator"]) for r in payload["results"]] == [
        ("uniform", "ips"), ("uniform", "dr"), ("vw:epsilon", "ips"), ("vw:epsilon", "dr")]
    for row in payload["results"]:
        assert set(row) == {"policy", "estimator", "value", "ci", "n"}
        assert row["ci"][0] <= row["value"] <= row["ci"][1] and row["n"] == 500


def test_replay_reads_real_dsjson_and_prints_a_table(dsjson_dir) -> None:
    done = run("replay", str(dsjson_dir / "dsjson_cb.json"), "--policy", "vw:squarecb",
               "--policy", "uniform", "--baseline", "uniform")
    assert done.returncode == 0, done.stderr
    assert "dsjson_cb.json: 23 decisions" in done.stdout and "snips" in done.stdout


def test_bad_policy_spec_is_a_clear_error() -> None:
    done = run("simulate", "--env", "personalization", "--policy", "vw:nope", "--steps", "10",
               "--no-ray", "--json")
    assert done.returncode == 2
    assert "unknown policy `vw:nope`" in done.stderr and done.stdout == ""


def test_errors_are_printed_as_they_are_even_with_brackets(tmp_path) -> None:
    # Paths and other programs' messages (HAProxy: "[/tmp/.../haproxy.cfg:50]") are not markup.
    (tmp_path / "[").mkdir()
    log = tmp_path / "[" / "x].json"
    log.write_text("not json\n")
    done = run("replay", str(log), "--policy", "uniform")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"error: cannot read {log}: Expecting value" in " ".join(done.stderr.split())


def test_bad_or_missing_yaml_files_are_clear_errors(tmp_path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("policy: [vw:squarecb\n")
    for args, message in [
        (("serve", "--config", str(broken)), "error: bad configuration: while parsing"),
        (("serve", "--config", str(tmp_path / "absent.yaml")), "does not exist"),
        (("experiment", "run", str(broken)), f"error: bad experiment {broken}: while parsing"),
    ]:
        done = run(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert message in " ".join(done.stderr.split()), done.stderr


def test_traffic_without_a_service_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run("traffic", "--url", url, "--decisions", "3")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot reach {url}" in " ".join(done.stderr.split()), done.stderr
