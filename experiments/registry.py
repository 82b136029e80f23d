"""Policies as MLflow models: log, register, and load them back (``models:/NAME@ALIAS``).

A registered model is a pyfunc that wraps the policy's saved bytes: ``predict`` takes a list
of ``{"context", "actions", "event_id"?}`` requests and returns ``{"chosen", "ranking"}``
for each, exactly as the policy ranks. ``load_policy_bytes`` gives the bytes back so the
service and the simulator can start from a registered model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

from experiments.tracking import client
from learners import Policy, load_policy

ARTIFACT = "policy"


class PolicyModel(PythonModel):
    """The pyfunc flavor of a raybandit policy."""

    def load_context(self, context: Any) -> None:
        self.policy = load_policy(Path(context.artifacts[ARTIFACT]).read_bytes())

    def predict(self, context: Any, model_input: list[Any],
                params: dict[str, Any] | None = None) -> list[Any]:
        requests = model_input.to_dict("records") if hasattr(model_input, "to_dict") \
            else list(model_input)
        out = []
        for request in requests:
            r = self.policy.rank(request.get("context") or {}, request["actions"],
                                 event_id=request.get("event_id"))
            out.append({"chosen": r.chosen, "probability": r.probability,
                        "ranking": [{"id": i.id, "probability": i.probability}
                                    for i in r.ranking]})
        return out


def log_policy(policy: Policy, registered_name: str | None = None, alias: str | None = None,
               run_name: str = "policy") -> str:
    """Log ``policy`` as an MLflow model (and register it); returns the model URI."""
    client()  # sets the tracking URI
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.bin"
        path.write_bytes(policy.save())
        with mlflow.start_run(run_name=run_name):
            mlflow.set_tags({"raybandit.policy": policy.spec,
                             "raybandit.model_version": str(policy.n_updates)})
            info = mlflow.pyfunc.log_model(
                name="policy", python_model=PolicyModel(), artifacts={ARTIFACT: str(path)},
                registered_model_name=registered_name, pip_requirements=[],
            )
    if registered_name is None:
        return str(info.model_uri)
    version = info.registered_model_version
    if alias:
        client().set_registered_model_alias(registered_name, alias, str(version))
        return f"models:/{registered_name}@{alias}"
    return f"models:/{registered_name}/{version}"


def load_policy_bytes(uri: str) -> bytes:
    """The saved policy inside a logged or registered model."""
    client()
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        matches = list(Path(local).rglob("policy.bin"))
        if not matches:
            raise ValueError(f"{uri} is not a raybandit policy model")
        return matches[0].read_bytes()


def load_registered_policy(uri: str) -> Policy:
    return load_policy(load_policy_bytes(uri))
