"""``raybandit``: serve, export-log, simulate, replay, experiment.

Human output goes to the terminal with tables and progress bars (on stderr); ``--json``
prints exactly one JSON object on stdout and nothing else.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from learners import LearnerError

app = typer.Typer(
    help="Contextual-bandit ranking on Ray: rank, reward, learn online; replay and compare.",
    no_args_is_help=True,
    add_completion=False,
)
experiment_app = typer.Typer(help="Experiments tracked in MLflow.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
# What we print holds paths, specs, names and other programs' errors, whose brackets Rich
# would read as its markup (HAProxy's "[/tmp/.../haproxy.cfg:50]" turned an error message
# into a MarkupError traceback): text is printed as it is, styles are given explicitly.
console = Console(stderr=True, markup=False)
# Tables go to stdout; when it is a pipe or file, give them room instead of 80 columns.
out_console = Console(width=None if sys.stdout.isatty() else 140, markup=False)


def _styled(label: str, style: str, message: str) -> Text:
    return Text.assemble((label, style), " ", message)


def _fail(message: str, code: int = 2) -> None:
    console.print(_styled("error:", "red", message))
    raise typer.Exit(code)


def _not_yet(what: str, issue: int) -> None:
    _fail(f"`{what}` is not yet available in this version (tracked in issue {issue}).", 3)


def _progress(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="step", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _interval(ci: tuple[float, float]) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8000).")] = None,
    config: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                help="YAML configuration file.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where embedded Redis and checkpoints live.")] = None,
) -> None:
    """Start Ray, Redis and the ranking service; Ctrl-C stops everything."""
    import yaml

    from serve.runtime import serve_forever
    from serve.settings import load_settings

    try:
        settings = load_settings(config, host=host, port=port, data_dir=data_dir)
    except (ValueError, yaml.YAMLError) as exc:
        _fail(f"bad configuration: {exc}")
    try:
        serve_forever(settings,
                      on_step=lambda message: console.print(_styled("raybandit", "bold", message)))
    except RuntimeError as exc:  # did not start in time (stopped cleanly already)
        _fail(str(exc), code=1)


@app.command("export-log")
def export_log(
    out: Annotated[Path, typer.Argument(help="Output file, .jsonl or .parquet.")],
    data_dir: Annotated[Path | None, typer.Option(help="Embedded store's data directory.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="External Redis URL.")] = None,
) -> None:
    """Write the service's decision log."""
    from serve.export import export_log as run_export
    from serve.redis_server import DataDirInUse

    try:
        count = run_export(out, data_dir=data_dir, redis_url=redis_url or os.environ.get("REDIS_URL"))
    except (FileNotFoundError, ValueError, DataDirInUse) as exc:
        _fail(str(exc))
    console.print(f"wrote {count} decisions to {out}")


@app.command()
def simulate(
    env: Annotated[str, typer.Option("--env", help="Environment spec, e.g. personalization?swap_at=0.5")],
    policy: Annotated[list[str], typer.Option("--policy", help="Policy spec (repeat for A/B).")],
    steps: Annotated[int, typer.Option(min=1, help="Decisions per run.")] = 2000,
    seeds: Annotated[int, typer.Option(min=1, help="Runs per policy (seeds 0..K-1).")] = 1,
    baseline: Annotated[str | None, typer.Option(help="Policy to difference against (default: the first).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for curves.png and results.json.")] = None,
    ray: Annotated[bool, typer.Option("--ray/--no-ray", help="Run policies x seeds as Ray tasks.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run policies online against a simulated environment; report reward and regret."""
    from simulator.plots import plot_simulation
    from simulator.runner import compare_simulations, sweep

    base = baseline or policy[0]
    if base not in policy:
        _fail(f"`--baseline` must be one of the --policy values, got {base!r}")
    total = steps * len(policy) * seeds
    with _progress(total, f"simulate {env}", not as_json and sys.stderr.isatty()) as bar:
        try:
            results = sweep(env, policy, steps, list(range(seeds)), use_ray=ray,
                            progress=bar.update)
        except LearnerError as exc:
            _fail(str(exc))
    comparison = compare_simulations(results, base)
    folder = out or Path("results") / f"simulate-{_slug(env)}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    plot = plot_simulation(results, folder / "curves.png", title=f"{env}, {steps} steps, {seeds} seed(s)")
    payload = {
        "env": env,
        "steps": steps,
        "results": [r.summary() for r in results],
        "baseline": base,
        "comparison": [
            {"policy": c.policy, "mean_reward": c.mean, "ci": list(c.ci),
             "difference": c.difference, "difference_ci": list(c.difference_ci)}
            for c in comparison
        ],
        "artifacts": {"plot": str(plot), "results": str(folder / "results.json")},
    }
    (folder / "results.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    if as_json:
        print(json.dumps(payload, default=_json_default))
        return
    table = Table(title=f"{env}: {steps} steps x {seeds} seed(s)")
    for column in ("policy", "mean reward", "95% CI", f"diff vs {base}", "95% CI",
                   "cum. regret (mean)", "optimal mean"):
        table.add_column(column, justify="right" if column != "policy" else "left")
    for c in comparison:
        runs = [r for r in results if r.policy == c.policy]
        table.add_row(
            c.policy, _fmt(c.mean), _interval(c.ci),
            "-" if c.policy == base else _fmt(c.difference),
            "-" if c.policy == base else _interval(c.difference_ci),
            _fmt(sum(r.cumulative_regret for r in runs) / len(runs), 1),
            _fmt(sum(r.optimal_mean_reward for r in runs) / len(runs)),
        )
    out_console.print(table)
    console.print(f"curves: {plot}\nresults: {folder / 'results.json'}")


@app.command()
def replay(
    log: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Decision log: .jsonl, .parquet or DSJSON.")],
    policy: Annotated[list[str], typer.Option("--policy", help="Policy spec (repeat for A/B).")],
    estimator: Annotated[list[str] | None, typer.Option("--estimator", help="replay, ips, snips, dm, dr (repeatable; default all).")] = None,
    baseline: Annotated[str | None, typer.Option(help="Policy to difference against (default: the first).")] = None,
    learn: Annotated[bool, typer.Option("--learn/--no-learn", help="Policies learn from the log as it is replayed.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Estimate each policy's mean reward per decision on a logged stream."""
    from simulator.estimators import ESTIMATORS
    from simulator.logs import read_log
    from simulator.runner import replay as run_replay

    names = estimator or list(ESTIMATORS)
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        _fail(f"unknown estimator `{unknown[0]}`; known: {', '.join(ESTIMATORS)}")
    base = baseline or policy[0]
    if base not in policy:
        _fail(f"`--baseline` must be one of the --policy values, got {base!r}")
    with _progress(0, f"replay {log.name}", not as_json and sys.stderr.isatty()) as bar:
        try:
            report = run_replay(read_log(log), policy, names, baseline=base, log_name=str(log),
                                learn=learn, progress=bar.update)
        except LearnerError as exc:
            _fail(str(exc))
        except ValueError as exc:
            _fail(f"cannot read {log}: {exc}")
    payload = {
        "log": str(log),
        "n_events": report.n_events,
        "results": [r.summary() for r in report.results],
        "n_skipped": report.n_skipped,
        "skipped": report.skipped_reasons,
        "baseline": base,
    }
    if as_json:
        print(json.dumps(payload, default=_json_default))
        return
    table = Table(title=f"{log.name}: {report.n_events} decisions"
                        + (f", {report.n_skipped} skipped" if report.n_skipped else ""))
    for column in ("policy", "estimator", "value", "95% CI", "n", f"diff vs {base}", "95% CI"):
        table.add_column(column, justify="left" if column in ("policy", "estimator") else "right")
    for r in report.results:
        d = r.difference
        show = d is not None and r.policy != base
        table.add_row(r.policy, r.estimator, _fmt(r.estimate.value), _interval(r.estimate.ci),
                      str(r.estimate.n), _fmt(d.value) if show and d else "-",
                      _interval(d.ci) if show and d else "-")
    out_console.print(table)
    for reason, count in report.skipped_reasons.items():
        console.print(f"skipped {count} decision(s): {reason}", style="yellow")


@app.command()
def traffic(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    env: Annotated[str, typer.Option("--env", help="Environment the simulated users come from.")] = "personalization",
    decisions: Annotated[int, typer.Option(min=1, help="How many rank calls.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated users.")] = 0,
    api_key: Annotated[str | None, typer.Option(envvar="RAYBANDIT_API_KEY", help="API key, if the service needs one.")] = None,
) -> None:
    """Drive a running service with simulated users through its real HTTP API."""
    import httpx

    from raybandit.traffic import drive
    from serve.client import APIError

    with _progress(decisions, f"traffic {env}", sys.stderr.isatty()) as bar:
        try:
            report = drive(url, env, decisions, seed, progress=bar.update, api_key=api_key)
        except APIError as exc:
            _fail(f"the service answered {exc}")
        except httpx.TransportError as exc:
            _fail(f"cannot reach {url} ({exc}); is `raybandit serve` running there?")
    console.print(f"{report.decisions} decisions, {report.rewards} rewards; mean reward "
                  f"{report.mean_reward:.3f} (expected {report.mean_expected:.3f}, "
                  f"optimal {report.optimal:.3f})")


@experiment_app.command("run")
def experiment_run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Experiment YAML.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run an experiment definition and record it in MLflow (parent run + child runs)."""
    import yaml

    from experiments.definitions import load_experiment
    from experiments.run import run_experiment
    from experiments.tracking import tracking_uri

    try:
        experiment = load_experiment(file)
    except (ValueError, yaml.YAMLError) as exc:
        _fail(f"bad experiment {file}: {exc}")
    total = experiment.steps * len(experiment.policies) * experiment.seeds \
        if experiment.kind == "simulate" else 0
    with _progress(total, f"experiment {experiment.name}", not as_json and sys.stderr.isatty()) as bar:
        record = run_experiment(experiment, progress=bar.update)
    payload = {"experiment": record.experiment, "run_id": record.run_id,
               "tracking_uri": tracking_uri(), **record.summary}
    if as_json:
        print(json.dumps(payload, default=_json_default))
        return
    console.print(f"recorded run {record.run_id} of experiment {record.experiment!r} in "
                  f"{tracking_uri()}")
    experiment_compare(record.experiment, out=None)


@experiment_app.command("compare")
def experiment_compare(
    name: Annotated[str | None, typer.Argument(help="Experiment name (default: the latest run).")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the comparison plot.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Compare the arms of a running service instead.")] = False,
    url: Annotated[str, typer.Option(help="The running service (with --live).")] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="RAYBANDIT_API_KEY", help="API key, if the service needs one.")] = None,
) -> None:
    """Compare the latest run of an experiment recorded in MLflow (or, with --live, the
    arms of a running service): table and plot."""
    from experiments.compare import compare, plot_comparison

    if live:
        _compare_live(url, api_key, as_json)
        return

    try:
        result = compare(name)
    except LookupError as exc:
        _fail(str(exc))
    plot = None
    if result.rows:
        plot = plot_comparison(result, out or Path("results") / f"compare-{_slug(result.experiment)}.png")
    if as_json:
        print(json.dumps({"experiment": result.experiment, "run_id": result.run_id,
                          "baseline": result.baseline, "plot": str(plot) if plot else None,
                          "rows": [r.__dict__ for r in result.rows],
                          "replay": result.replay}, default=_json_default))
        return
    if result.kind == "replay":
        table = Table(title=f"{result.experiment} (replay, run {result.run_id[:8]})")
        for column in ("policy", "estimator", "value", "95% CI", "n"):
            table.add_column(column)
        for row in result.replay:
            for estimator in ("replay", "ips", "snips", "dm", "dr"):
                if estimator in row:
                    table.add_row(row["policy"], estimator, _fmt(row[estimator]),
                                  _interval((row.get(f"{estimator}.ci_low", math.nan),
                                             row.get(f"{estimator}.ci_high", math.nan))),
                                  str(int(row.get(f"{estimator}.n", 0))))
        out_console.print(table)
        return
    table = Table(title=f"{result.experiment} (run {result.run_id[:8]})")
    for column in ("policy", "seeds", "mean reward", "95% CI", f"diff vs {result.baseline}", "95% CI"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for r in result.rows:
        table.add_row(r.policy, str(r.n), _fmt(r.mean), _interval(r.ci),
                      "-" if r.difference is None else _fmt(r.difference),
                      "-" if r.difference_ci is None else _interval(r.difference_ci))
    out_console.print(table)
    console.print(f"plot: {plot}")


def _compare_live(url: str, api_key: str | None, as_json: bool) -> None:
    from serve.client import APIError, Client

    try:
        with Client(url, api_key=api_key) as client:
            stats = client.stats()
    except (APIError, OSError) as exc:
        _fail(f"cannot read {url}/v1/stats: {exc}")
    if as_json:
        print(json.dumps(stats))
        return
    table = Table(title=f"live arms at {url} (control: {stats['control']})")
    for column in ("arm", "mode", "decisions", "learned", "mean reward", "95% CI",
                   "diff vs control", "95% CI"):
        table.add_column(column, justify="left" if column in ("arm", "mode") else "right")
    for arm in stats["policies"]:
        ci, dci = arm["mean_reward_ci"], arm["difference_ci"]
        table.add_row(arm["policy"], arm.get("mode", "live"), str(arm["decisions"]),
                      str(arm["learned"]), _fmt(arm["mean_reward"]),
                      _interval(tuple(ci)) if ci else "-",
                      _fmt(arm["difference_to_control"]), _interval(tuple(dci)) if dci else "-")
    out_console.print(table)
    apprentices = [arm for arm in stats["policies"] if arm.get("apprentice")]
    if apprentices:
        table = Table(title="apprentice mode: the policy against the caller's baseline "
                            "(doubly robust, on the baseline's decisions)")
        for column in ("arm", "events", "baseline reward", "policy estimate", "difference",
                       "95% CI", "agrees", "graduated"):
            table.add_column(column, justify="left" if column == "arm" else "right")
        for arm in apprentices:
            a = arm["apprentice"]
            dci = a["difference_ci"]
            graduated = (f"after {a['graduated_after']}" if a["graduated"]
                         else f"next check at {a['next_check_after']}")
            table.add_row(arm["policy"], str(a["events"]), _fmt(a["baseline_mean_reward"]),
                          _fmt(a["policy_estimate"]), _fmt(a["difference"]),
                          _interval(tuple(dci)) if dci else "-", _fmt(a["agreement"]),
                          graduated)
        out_console.print(table)


@experiment_app.command("register")
def experiment_register(
    model_name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str | None, typer.Option(help="Alias to point at the new version, e.g. champion.")] = None,
    policy: Annotated[str | None, typer.Option(help="Policy spec (default: the service's).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded store's data directory.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="External Redis URL.")] = None,
) -> None:
    """Register the service's current model in the MLflow model registry."""
    from experiments.registry import log_policy
    from serve.export import current_policy
    from serve.redis_server import DataDirInUse

    try:
        current = current_policy(policy, data_dir=data_dir,
                                 redis_url=redis_url or os.environ.get("REDIS_URL"))
    except (FileNotFoundError, LookupError, DataDirInUse) as exc:
        _fail(str(exc))
    uri = log_policy(current, registered_name=model_name, alias=alias, run_name="service-model")
    console.print(f"registered {current.spec} (version {current.n_updates}) as {uri}")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
