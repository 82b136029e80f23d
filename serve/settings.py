"""Service configuration: a YAML file and ``RAYBANDIT_*`` environment variables.

Precedence: environment variables over the YAML file over the defaults. ``REDIS_URL`` and
``RAY_ADDRESS`` are also read without the prefix, as the brief says.

>>> s = Settings(policy="vw:epsilon?epsilon=0.1", reward_wait_seconds=5)
>>> s.reward_for("rating", 5), s.reward_for("click", None), s.reward_for("dismiss", None)
(1.0, 1.0, -0.5)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from learners import make_policy, seed_from_event_id

INTERACTIONS = ("view", "click", "like", "dislike", "share", "purchase", "rating", "dismiss")

DEFAULT_REWARDS: dict[str, float] = {
    "view": 0.0, "click": 1.0, "like": 1.0, "dislike": -1.0, "share": 1.0, "purchase": 1.0,
    "dismiss": -0.5,
}


class Graduation(BaseModel):
    """When apprentice mode hands over to the policy (see ``learners.evaluation``)."""

    model_config = ConfigDict(extra="forbid")

    min_events: int = Field(1000, ge=10, description="baseline decisions between checks")
    min_lift: float = Field(0.0, description="the policy's lower confidence bound must beat "
                                             "the baseline's mean reward by more than this")


class Settings(BaseSettings):
    """Everything ``raybandit serve`` can be told (see the README's Configuration table)."""

    model_config = SettingsConfigDict(env_prefix="RAYBANDIT_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("raybandit-data")
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("RAYBANDIT_REDIS_URL", "REDIS_URL", "redis_url"))
    ray_address: str | None = Field(
        None, validation_alias=AliasChoices("RAYBANDIT_RAY_ADDRESS", "RAY_ADDRESS",
                                            "ray_address"))
    ray_dashboard: bool = False

    policy: str = "vw:squarecb"
    arms: dict[str, float] = Field(
        default_factory=dict,
        description="A/B: policy spec -> share of traffic; empty means `policy` alone. The "
                    "first arm is the control unless `control` names another.")
    control: str | None = None
    learn_from_all_arms: bool = True
    initial_model: str | None = Field(
        None, description="registered MLflow model to start from when no checkpoint exists, "
                          "e.g. models:/ranker@champion")
    learning_mode: Literal["online", "apprentice", "logging-only"] = Field(
        "online", description="apprentice: return the caller's baseline action while the "
                              "policy learns, until it proves better (`graduation`)")
    graduation: Graduation = Field(default_factory=Graduation)
    reward_wait_seconds: float = Field(60.0, gt=0)
    default_reward: float = 0.0
    aggregation: Literal["first", "sum", "max"] = "first"
    rewards: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_REWARDS))
    rating_range: tuple[float, float] = (0.0, 1.0)
    reward_min: float = -10.0
    reward_max: float = 10.0

    replicas: int = Field(1, ge=1)
    publish_interval_ms: int = Field(200, ge=10)
    refresh_interval_ms: int = Field(100, ge=10)
    history_length: int = Field(20, ge=0)
    log_retention_days: float | None = Field(
        None, gt=0, description="drop decision-log entries older than this once every arm's "
                                "checkpoint has learned them, and a user's history this long "
                                "after their last reward; unset keeps both")

    max_actions: int = Field(200, ge=1)
    max_features: int = Field(500, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_batch: int = Field(1000, ge=1)
    api_keys: list[str] = Field(default_factory=list)

    @field_validator("policy")
    @classmethod
    def _policy_must_parse(cls, spec: str) -> str:
        make_policy(spec)  # raises a SpecError (a ValueError) naming the problem
        return spec

    @field_validator("arms")
    @classmethod
    def _arms_parse(cls, arms: dict[str, float]) -> dict[str, float]:
        for spec, share in arms.items():
            make_policy(spec)
            if not share > 0:
                raise ValueError(f"arm {spec!r} needs a positive share, got {share}")
        return arms

    @field_validator("rewards")
    @classmethod
    def _known_interactions(cls, rewards: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(rewards) - set(INTERACTIONS))
        if unknown:
            raise ValueError(f"unknown interaction types {unknown}; known: {list(INTERACTIONS)}")
        return {**DEFAULT_REWARDS, **rewards}

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        if self.reward_min >= self.reward_max:
            raise ValueError("`reward_min` must be below `reward_max`")
        if not self.reward_min <= self.default_reward <= self.reward_max:
            raise ValueError("`default_reward` must lie within [reward_min, reward_max]")
        if self.control is not None and self.control not in self.arm_shares:
            raise ValueError(f"`control` must be one of the arms, got {self.control!r}")
        return self

    @property
    def arm_shares(self) -> dict[str, float]:
        """Every policy served, with its normalised share of traffic."""
        arms = self.arms or {self.policy: 1.0}
        total = sum(arms.values())
        return {spec: share / total for spec, share in arms.items()}

    @property
    def retention_seconds(self) -> int:
        """``log_retention_days`` in whole seconds (at least 1); 0 when unset."""
        days = self.log_retention_days
        return 0 if days is None else max(1, round(days * 86400))

    @property
    def control_arm(self) -> str:
        return self.control or next(iter(self.arm_shares))

    def assign(self, user_id: str | None, event_id: str) -> str:
        """The arm of a decision: sticky per user (hash of the user id), else per request.

        >>> s = Settings(arms={"uniform": 1, "fixed": 1})
        >>> s.assign("user-7", "e1") == s.assign("user-7", "e2")
        True
        """
        shares = self.arm_shares
        if len(shares) == 1:
            return next(iter(shares))
        u = seed_from_event_id(user_id or event_id, salt="arm") / 2.0**64
        cumulative = 0.0
        for spec, share in shares.items():
            cumulative += share
            if u < cumulative:
                return spec
        return spec

    def reward_for(self, kind: str, value: float | None) -> float:
        """The reward of a typed interaction; ratings 1-5 map linearly onto ``rating_range``."""
        if kind == "rating":
            low, high = self.rating_range
            return low + (float(value or 0) - 1.0) / 4.0 * (high - low)
        return self.rewards[kind]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a YAML file (optional), the environment, and explicit overrides."""
    values: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(Path(config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config} must hold a mapping of settings")
        values.update(loaded)
    # Environment variables win over the file: drop file keys the environment also sets.
    for key in list(values):
        if f"RAYBANDIT_{key.upper()}" in os.environ:
            values.pop(key)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)

