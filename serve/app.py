"""The Serve application: ``build_app(args) -> Application``.

``serve deploy serve/config.yaml`` on a cluster uses the same builder as ``raybandit serve``
(``import_path: serve.app:build_app`` with the settings under ``args``).
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serve.ingress import Ingress
from serve.learner import learner_deployment
from serve.settings import Settings


def build_app(args: dict[str, Any]) -> Application:
    """Validate the settings (fail before anything starts) and bind the deployments."""
    settings = Settings.model_validate(args)
    if not settings.redis_url:
        raise ValueError("`redis_url` is required to build the app (raybandit serve sets it)")
    plain = settings.model_dump(mode="json")
    env = {"env_vars": {"OPENBLAS_NUM_THREADS": "1"}}
    learner = learner_deployment().options(
        ray_actor_options={"num_cpus": 0, "runtime_env": env}).bind(plain)
    ingress: Any = Ingress  # a Serve Deployment; the decorator hides that from mypy
    return ingress.options(
        num_replicas=settings.replicas,
        ray_actor_options={"num_cpus": 0, "runtime_env": env},
    ).bind(plain, learner)
