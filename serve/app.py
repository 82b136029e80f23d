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

REPLICA_RUNTIME_ENV = {"env_vars": {"OPENBLAS_NUM_THREADS": "1"}}
# No access log: Serve's default writes a line per request to the replica's log file, in
# throughput-optimized mode 1,000 at a time, which stalled the replica ~25 ms every 1,000
# requests (rank p99 at 8 concurrent 27-33 ms with it, 12.5-15.6 without). serve.start's
# logging config covers only the controller and proxies; a deployment's own config is what
# `serve deploy` keeps too unless its file says otherwise. INFO, not WARNING: Serve sends a
# replica's stderr (where warnings of ours without a handler go) to its log at INFO.
REPLICA_LOGGING = {"enable_access_log": False, "log_level": "INFO"}


def build_app(args: dict[str, Any]) -> Application:
    """Validate the settings (fail before anything starts) and bind the deployments."""
    settings = Settings.model_validate(args)
    if not settings.redis_url:
        raise ValueError("`redis_url` is required to build the app (raybandit serve sets it)")
    plain = settings.model_dump(mode="json")
    options = {"ray_actor_options": {"num_cpus": 0, "runtime_env": REPLICA_RUNTIME_ENV},
               "logging_config": REPLICA_LOGGING}
    learner = learner_deployment().options(**options).bind(plain)
    ingress: Any = Ingress  # a Serve Deployment; the decorator hides that from mypy
    return ingress.options(num_replicas=settings.replicas, **options).bind(plain, learner)
