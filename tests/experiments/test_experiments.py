"""MLflow tracking with a temporary store: runs are recorded, read back, compared; a
registered model ranks exactly like the policy it was made from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.compare import compare
from experiments.definitions import Experiment, load_experiment
from experiments.registry import load_registered_policy, log_policy
from experiments.run import run_experiment
from experiments.tracking import client
from learners import make_policy
from tests.learners.problems import ACTIONS, play

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def test_a_simulation_run_records_params_metrics_and_artifacts(store) -> None:
    experiment = Experiment(name="tiny", env="personalization",
                            policies=["uniform", "vw:squarecb"], steps=300, seeds=2,
                            metric_every=100, use_ray=False)
    record = run_experiment(experiment)
    api = client()
    parent = api.get_run(record.run_id)
    assert parent.data.params["policies"] == "uniform,vw:squarecb"
    assert parent.data.tags["raybandit.role"] == "parent"
    assert {a.path for a in api.list_artifacts(record.run_id)} == {"curves.png", "results.json"}
    children = api.search_runs([parent.info.experiment_id],
                               filter_string=f"tags.`mlflow.parentRunId` = '{record.run_id}'")
    assert len(children) == 4
    child = next(c for c in children if c.data.tags["raybandit.policy"] == "vw:squarecb")
    assert child.data.params["policy.algorithm"] == "squarecb"
    history = api.get_metric_history(child.info.run_id, "cumulative_reward")
    assert [m.step for m in history] == [100, 200, 300]
    assert history[-1].value == pytest.approx(child.data.metrics["mean_reward"] * 300)
    assert "moving_mean_reward" in child.data.metrics


def test_compare_reads_the_runs_back(store) -> None:
    experiment = Experiment(name="cmp", env="personalization",
                            policies=["uniform", "vw:squarecb"], steps=600, seeds=3,
                            use_ray=False)
    record = run_experiment(experiment)
    result = compare("cmp")
    assert result.run_id == record.run_id and result.baseline == "uniform"
    rows = {r.policy: r for r in result.rows}
    means = {p: sum(r["mean_reward"] for r in record.summary["results"] if r["policy"] == p) / 3
             for p in ("uniform", "vw:squarecb")}
    assert rows["uniform"].mean == pytest.approx(means["uniform"])
    assert rows["vw:squarecb"].n == 3
    assert rows["vw:squarecb"].difference == pytest.approx(means["vw:squarecb"] - means["uniform"])
    assert rows["vw:squarecb"].difference_ci[0] > 0  # learning clearly beats uniform
    assert compare().experiment == "cmp"  # the latest by default


def test_registered_model_ranks_like_its_policy(store) -> None:
    import mlflow

    policy = make_policy("vw:squarecb", seed=1)
    play(policy, 200, seed=1)
    uri = log_policy(policy, registered_name="ranker", alias="champion")
    assert uri == "models:/ranker@champion"
    restored = load_registered_policy(uri)
    pyfunc = mlflow.pyfunc.load_model(uri)
    for i in range(10):
        ctx = {"user": "tom" if i % 2 else "anna"}
        expected = policy.rank(ctx, ACTIONS, event_id=f"q{i}")
        assert restored.rank(ctx, ACTIONS, event_id=f"q{i}") == expected
        (answer,) = pyfunc.predict([{"context": ctx, "actions": ACTIONS, "event_id": f"q{i}"}])
        assert answer["chosen"] == expected.chosen
        assert [r["probability"] for r in answer["ranking"]] == [
            r.probability for r in expected.ranking]


def test_simulation_warm_starts_from_a_registered_model(store) -> None:
    from simulator.environments import make_environment
    from simulator.runner import simulate

    trained = make_policy("vw:squarecb", seed=2)
    env = make_environment("personalization")
    for step, rnd in enumerate(env.rounds(1500, seed=9)):
        r = trained.rank(rnd.context, rnd.actions, seed=step)
        index = [a["id"] for a in rnd.actions].index(r.chosen)
        trained.learn(rnd.context, rnd.actions, r.chosen, r.probability, rnd.reward(index))
    uri = log_policy(trained, registered_name="warm", alias="trained")
    experiment = Experiment(name="warm", env="personalization", policies=["vw:squarecb"],
                            steps=50, seeds=1, use_ray=False, warm_start={"vw:squarecb": uri})
    warm = run_experiment(experiment).summary["results"][0]["cumulative_regret"]
    cold = simulate("personalization", "vw:squarecb", 50, seed=0).cumulative_regret
    # pseudo-regret (expected rewards, no draw noise): the warm model already knows the tastes
    assert warm < 0.5 * cold, (warm, cold)


def test_shipped_experiments_are_valid() -> None:
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        experiment = load_experiment(path)
        if experiment.log is not None:
            assert experiment.log.exists(), f"{path.name}: {experiment.log} is missing"


def test_cli_experiment_run_and_compare(store, tmp_path) -> None:
    definition = tmp_path / "exp.yaml"
    definition.write_text("name: cli-exp\nenv: linear\npolicies: [uniform, vw:squarecb]\n"
                          "steps: 200\nseeds: 2\nuse_ray: false\n")
    env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": store,
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "raybandit.cli", "experiment", "run",
                           str(definition), "--json"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["experiment"] == "cli-exp" and len(payload["results"]) == 4
    done = subprocess.run([sys.executable, "-m", "raybandit.cli", "experiment", "compare",
                           "cli-exp", "--out", str(tmp_path / "cmp.png")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "vw:squarecb" in done.stdout and (tmp_path / "cmp.png").stat().st_size > 5000
