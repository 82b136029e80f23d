"""Recording experiments in MLflow (with the registry code, the only place mlflow is used).

Tracking goes to ``MLFLOW_TRACKING_URI`` when set, else to an embedded SQLite store,
``./mlflow.db`` (MLflow 3.13+ no longer accepts a bare ``./mlruns`` file store by default);
``mlflow ui --backend-store-uri sqlite:///mlflow.db`` browses it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch call


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def client() -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient(tracking_uri())


def metric_key(text: str) -> str:
    """MLflow keys allow letters, digits, ``_-. /``; policy specs carry ``:?=&``."""
    return re.sub(r"[^\w\-. /]", "_", text)


def experiment_id(api: MlflowClient, name: str) -> str:
    found = api.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(api.create_experiment(name))


def start_run(api: MlflowClient, exp_id: str, name: str, tags: dict[str, str],
              parent: str | None = None) -> str:
    all_tags = dict(tags)
    if parent is not None:
        all_tags["mlflow.parentRunId"] = parent
    return str(api.create_run(exp_id, run_name=name, tags=all_tags).info.run_id)


def log_params(api: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    api.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


def log_metrics(api: MlflowClient, run_id: str,
                points: Iterable[tuple[str, float, int]]) -> None:
    """(key, value, step) points, sent in batches."""
    now = int(time.time() * 1000)
    batch: list[Metric] = []
    for key, value, step in points:
        batch.append(Metric(metric_key(key), float(value), now, step))
        if len(batch) >= BATCH:
            api.log_batch(run_id, metrics=batch)
            batch = []
    if batch:
        api.log_batch(run_id, metrics=batch)


def set_tags(api: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    api.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def finish(api: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
    api.set_terminated(run_id, status=status)
