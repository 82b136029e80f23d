"""HTTP request and response models (API v1). Used at the boundary only; ``extra="forbid"``
so a misspelt field is a 422, not silently ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

# Strict: a float such as 0.0 must not quietly become the id 0, nor "1" the id 1.
ActionId = StrictStr | StrictInt
Interaction = Literal["view", "click", "like", "dislike", "share", "purchase", "rating",
                      "dismiss"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ActionIn(Strict):
    id: ActionId = Field(description="The item's id: a non-empty string or an integer, unique "
                                     "within the request.")
    features: dict[str, Any] = Field(default_factory=dict)


class RankRequest(Strict):
    context: dict[str, Any] = Field(default_factory=dict)
    actions: list[ActionIn] = Field(min_length=1)
    event_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[\w.:\-]+$")
    user_id: str | None = Field(None, min_length=1, max_length=128)
    exclude: list[ActionId] = Field(default_factory=list)
    top_k: int | None = Field(None, ge=1)
    deferred: bool = False
    baseline: ActionId | None = Field(
        None, description="The action you would show without the service (apprentice mode "
                          "returns it until the policy graduates); default: the first "
                          "non-excluded action.")

    @field_validator("actions")
    @classmethod
    def _ids_not_blank(cls, actions: list[ActionIn]) -> list[ActionIn]:
        # One check per request: a validator on ActionIn.id ran once per action, ~40% of
        # validating a 10-action request.
        for index, action in enumerate(actions):
            if isinstance(action.id, str) and not action.id.strip():
                raise ValueError(f"`actions[{index}].id` must be a non-empty string or an "
                                 f"integer")
        return actions


class RankedItem(BaseModel):
    id: ActionId
    probability: float


class RankResponse(BaseModel):
    event_id: str
    chosen: ActionId
    ranking: list[RankedItem]
    policy: str
    model_version: int
    mode: Literal["live", "apprentice"] = "live"
    policy_choice: ActionId | None = Field(
        None, description="apprentice mode: what the policy would have chosen")


class RewardRequest(Strict):
    """Either ``reward`` (a number) or ``type`` (with ``value`` for ratings)."""

    event_id: str = Field(min_length=1, max_length=128)
    reward: float | None = None
    type: Interaction | None = None
    value: float | None = None
    action_id: ActionId | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RewardRequest:
        if (self.reward is None) == (self.type is None):
            raise ValueError("give exactly one of `reward` (a number) or `type`")
        if self.type == "rating" and (self.value is None or not 1 <= self.value <= 5):
            raise ValueError(f"a rating needs `value` between 1 and 5, got {self.value}")
        return self


class RewardResponse(BaseModel):
    event_id: str
    status: Literal["accepted"]
    reward: float


class EventsRequest(Strict):
    events: list[dict[str, Any]] = Field(min_length=1)


class EventResult(BaseModel):
    index: int
    event_id: str | None = None
    status: int
    # A message, or for a 422 the validation errors as a list (as in /v1/rank/batch)
    detail: str | list[dict[str, Any]] | None = None


class EventsResponse(BaseModel):
    accepted: int
    results: list[EventResult]


class ActivateRequest(Strict):
    event_id: str = Field(min_length=1, max_length=128)


class ActivateResponse(BaseModel):
    event_id: str
    status: Literal["activated", "already active"]


class BatchRankRequest(Strict):
    requests: list[dict[str, Any]] = Field(min_length=1)


class BatchRankResponse(BaseModel):
    results: list[RankResponse | dict[str, Any]]


class ApprenticeStats(BaseModel):
    """How the policy would have done on the baseline's decisions (doubly robust, paired)."""

    events: int
    baseline_mean_reward: float | None
    policy_estimate: float | None
    difference: float | None
    difference_ci: tuple[float, float] | None
    agreement: float | None = Field(description="share of decisions where the policy's top "
                                                "choice was the baseline")
    graduated: bool
    graduated_after: int | None
    next_check_after: int | None
    min_lift: float


class PolicyStats(BaseModel):
    policy: str
    decisions: int
    rewards: int
    learned: int
    mean_reward: float | None
    mean_reward_ci: tuple[float, float] | None
    learner_updates: int
    model_version: int
    pending_decisions: int
    difference_to_control: float | None = None
    difference_ci: tuple[float, float] | None = None
    mode: Literal["live", "apprentice", "logging-only"] = "live"
    apprentice: ApprenticeStats | None = None


class ItemCount(BaseModel):
    id: str
    count: int


class StatsResponse(BaseModel):
    policies: list[PolicyStats]
    control: str
    top_clicked: list[ItemCount]
    top_viewed: list[ItemCount]
    log_length: int

