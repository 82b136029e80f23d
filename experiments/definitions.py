"""Experiment definitions: YAML files validated into ``Experiment``.

An experiment is either a simulation (``env``) or a replay of a decision log (``log``):

.. code-block:: yaml

    name: personalization-swap
    env: personalization?swap_at=0.5
    policies: [uniform, vw:squarecb, river:linucb]
    baseline: uniform
    steps: 4000
    seeds: 3

>>> Experiment(name="x", env="linear", policies=["uniform"]).kind
'simulate'
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from learners import make_policy
from simulator.environments import make_environment
from simulator.estimators import ESTIMATORS


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    env: str | None = None
    log: Path | None = None
    policies: list[str] = Field(min_length=1)
    baseline: str | None = None
    steps: int = Field(2000, ge=1)
    seeds: int = Field(3, ge=1)
    estimators: list[str] = Field(default_factory=lambda: list(ESTIMATORS))
    metric_every: int = Field(50, ge=1, description="log per-step metrics every N steps")
    warm_start: dict[str, str] = Field(
        default_factory=dict, description="policy spec -> registered model URI to start from")
    use_ray: bool = True

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        if (self.env is None) == (self.log is None):
            raise ValueError("give exactly one of `env` (simulate) or `log` (replay)")
        if self.env is not None:
            make_environment(self.env)
        for spec in self.policies:
            make_policy(spec)
        if self.baseline is not None and self.baseline not in self.policies:
            raise ValueError(f"`baseline` must be one of `policies`, got {self.baseline!r}")
        unknown = [e for e in self.estimators if e not in ESTIMATORS]
        if unknown:
            raise ValueError(f"unknown estimators {unknown}; known: {list(ESTIMATORS)}")
        unknown_warm = [spec for spec in self.warm_start if spec not in self.policies]
        if unknown_warm:
            raise ValueError(f"`warm_start` names policies not in `policies`: {unknown_warm}")
        return self

    @property
    def kind(self) -> str:
        return "simulate" if self.env is not None else "replay"

    @property
    def baseline_policy(self) -> str:
        return self.baseline or self.policies[0]


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; a relative ``log`` is relative to the file."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping")
    experiment = Experiment.model_validate(data)
    if experiment.log is not None and not experiment.log.is_absolute():
        experiment.log = (path.parent / experiment.log).resolve()
    return experiment
