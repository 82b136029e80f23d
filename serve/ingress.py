"""The HTTP API v1: the ingress deployment ranks in-process with its in-memory model.

Per rank request: validate, add the user's history features, rank with the current model
(seeded by the event id), write the decision to Redis in one script call, answer. Rewards are
acknowledged (202) only once the reward join script has run in Redis.
"""


import logging
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from fastapi import Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from ray import serve as ray_serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import Headers

from learners import LearnerError
from learners.features import count_features
from learners.policy import read_header
from learners.types import Action, duplicate_ids
from serve import http
from serve.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooLarge,
    Unauthorized,
    validation_details,
)
from serve.models import ModelFollower
from serve.schemas import (
    ActivateRequest,
    ActivateResponse,
    BatchRankRequest,
    BatchRankResponse,
    EventsRequest,
    EventsResponse,
    RankRequest,
    RankResponse,
    RewardRequest,
    RewardResponse,
    StatsResponse,
)
from serve.settings import Settings
from serve.state import RETAIN_SECONDS, Decision, Store, model_key
from serve.stats import stats_response

log = logging.getLogger(__name__)
UI_DIR = Path(__file__).parent / "ui"

app = http.new_app(title="raybandit", version="1",
                   description="Contextual-bandit ranking: rank, reward, learn online.")


# Helpers used by the deployment class must be defined above it: @serve.ingress serializes
# the class where it is defined.
def _or_raise(result: Any) -> Any:
    if isinstance(result, ServiceError):
        raise result
    return result


def _reward_refusal(event_id: str, outcome: str) -> ServiceError:
    """The error for a reward the join script did not accept."""
    if outcome == "unknown":
        return NotFound(f"unknown event id {event_id!r} (never ranked, or too old)")
    if outcome == "expired":
        return NotFound(f"event {event_id!r} expired: its reward window closed and it was "
                        f"learned with the default reward")
    if outcome == "deferred":
        return Conflict(f"event {event_id!r} is deferred: activate it first")
    return Conflict(f"event {event_id!r} already has its reward")


def _baseline(body: RankRequest, candidates: list[Any]) -> Any:
    """The caller's baseline action: as given, else the first non-excluded candidate."""
    if body.baseline is None:
        return candidates[0].id
    if not any(a.id == body.baseline for a in candidates):
        raise Invalid(f"`baseline` {body.baseline!r} must be one of the non-excluded actions")
    return body.baseline


@ray_serve.deployment(max_ongoing_requests=64, health_check_period_s=5)
@ray_serve.ingress(app)
class Ingress:
    def __init__(self, settings: dict[str, Any], learner: DeploymentHandle | None = None):
        self.settings = Settings.model_validate(settings)
        http.limit_body_bytes(self.settings.max_body_bytes)
        self.learner = learner
        self.store = Store(self.settings.redis_url or "")
        self.models = {
            spec: ModelFollower(self.settings.redis_url or "", spec,
                                self.settings.refresh_interval_ms)
            for spec in self.settings.arm_shares
        }
        self.model = self.models[self.settings.control_arm]
        context = ray_serve.get_replica_context()
        replica_id = getattr(context, "replica_id", None)
        self.replica = str(getattr(replica_id, "unique_id", replica_id))
        http.hot_route("POST", "/v1/rank", RankRequest, self._rank_one)
        http.hot_route("POST", "/v1/reward", RewardRequest, self._reward_one)

    # -- helpers ----------------------------------------------------------------------------
    def _authorize(self, headers: Headers) -> None:
        keys = self.settings.api_keys
        if not keys:
            return
        header = headers.get("authorization", "")
        given = header.removeprefix("Bearer ").strip() or headers.get("x-api-key", "")
        if not any(secrets.compare_digest(given, key) for key in keys):
            raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)")

    def _authorize_admin(self, headers: Headers) -> None:
        """Admin calls (model export/import, reset) always need a key."""
        if not self.settings.api_keys:
            raise Forbidden("admin calls are disabled until `api_keys` are configured")
        self._authorize(headers)

    async def _learner_call(self, method: str, *args: Any) -> Any:
        if self.learner is None:
            raise ServiceError("this deployment has no learner")
        try:
            return await getattr(self.learner, method).remote(*args)
        except LearnerError:
            raise
        except Exception as exc:  # the learner's own error travels wrapped by Ray
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, LearnerError):
                raise Invalid(str(cause)) from exc
            raise

    def _check_limits(self, body: RankRequest) -> None:
        s = self.settings
        if len(body.actions) > s.max_actions:
            raise Invalid(f"`actions` holds {len(body.actions)} actions, over the limit of "
                          f"{s.max_actions}")
        n = count_features(body.context) + sum(count_features(a.features)
                                               for a in body.actions)
        if n > s.max_features:
            raise Invalid(f"the request carries {n} features, over the limit of "
                          f"{s.max_features}")
        dupes = duplicate_ids([a.id for a in body.actions])
        if dupes:
            raise Invalid(f"action ids must be unique within a request, got duplicates {dupes} "
                          "(compared as text: 1 and \"1\" are one item)")

    async def _decide(self, body: RankRequest) -> tuple[Decision, dict[str, Any]]:
        """Rank one request; nothing is stored yet (see ``_rank_many``)."""
        self._check_limits(body)
        s = self.settings
        context = dict(body.context)
        if body.user_id:
            history = await self.store.user_history(body.user_id, s.history_length)
            if history:
                context["user_history"] = history
        event_id = body.event_id or secrets.token_hex(16)
        arm = s.assign(body.user_id, event_id)
        follower = self.models[arm]
        policy, version = follower.policy, follower.version
        apprentice = s.learning_mode == "apprentice" and not follower.graduated
        actions = [Action(a.id, a.features) for a in body.actions]
        ranking = policy.rank(context, actions, exclude=body.exclude or None,
                              top_k=None if apprentice else body.top_k, event_id=event_id)
        baseline = _baseline(body, ranking.actions)
        ranked = [(r.id, r.probability) for r in ranking.ranking]
        chosen, probability = ranking.chosen, ranking.probability
        if apprentice:
            # The baseline is shown, with certainty; the policy's order follows it.
            chosen, probability = baseline, 1.0
            ranked = [(baseline, 1.0)] + [(i, 0.0) for i, _ in ranked if i != baseline]
            ranked = ranked[: body.top_k]
        decision = {
            "event_id": event_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "context": context,
            # dicts, not the Action dataclasses: orjson writes those 3x slower
            "actions": [{"id": a.id, "features": a.features} for a in ranking.actions],
            "chosen": chosen,
            "probability": probability,
            "policy": arm,
            "model_version": version,
            "user_id": body.user_id,
        }
        if apprentice:
            decision.update(mode="apprentice", policy_choice=ranking.chosen)
        record = Decision(
            event_id=event_id, decision_json=orjson.dumps(decision), policy=arm,
            chosen=str(chosen), user=body.user_id or "", deferred=body.deferred,
            deadline=time.time() + s.reward_wait_seconds,
            ttl=int(s.reward_wait_seconds + RETAIN_SECONDS) * (24 if body.deferred else 1),
        )
        # A plain dict, encoded by orjson: building and dumping the pydantic models took ~20 us
        # per decision. Its keys are RankResponse's (the documented schema; tests hold the
        # two equal).
        return record, {
            "event_id": event_id, "chosen": chosen,
            "ranking": [{"id": i, "probability": p} for i, p in ranked],
            "policy": arm, "model_version": version,
            "mode": "apprentice" if apprentice else "live",
            "policy_choice": ranking.chosen if apprentice else None,
        }

    async def _rank_many(self, items: list[Any]) -> list[dict[str, Any] | ServiceError]:
        """Rank every request, then store all their decisions in one Redis round trip (one
        AOF fsync); a bad or duplicate item gets its error in its place."""
        results: list[dict[str, Any] | ServiceError] = []
        decided: list[tuple[int, Decision]] = []
        for item in items:
            try:
                body = item if isinstance(item, RankRequest) else RankRequest.model_validate(item)
                record, response = await self._decide(body)
            except ValidationError as exc:
                results.append(Invalid(validation_details(exc)))
            except ServiceError as exc:
                results.append(exc)
            else:
                decided.append((len(results), record))
                results.append(response)
        stored = await self.store.record_decisions([record for _, record in decided])
        for (index, record), ok in zip(decided, stored, strict=True):
            if not ok:
                results[index] = Conflict(f"event id {record.event_id!r} was already used "
                                          f"for a decision")
        return results

    def _reward_of(self, body: RewardRequest) -> tuple[float, str]:
        s = self.settings
        if body.reward is not None:
            reward, kind = body.reward, "reward"
        else:
            assert body.type is not None
            reward, kind = s.reward_for(body.type, body.value), body.type
        if not s.reward_min <= reward <= s.reward_max:
            raise Invalid(f"`reward` must be in [{s.reward_min}, {s.reward_max}], got {reward}")
        return reward, kind

    async def _reward_many(self, items: list[Any]) -> list[dict[str, Any] | ServiceError]:
        """Validate every reward, then run all their joins in one Redis round trip. Answers
        are plain dicts with RewardResponse's keys (as ``_decide``'s; tests hold them equal)."""
        results: list[dict[str, Any] | ServiceError] = []
        valid: list[tuple[int, RewardRequest, float, str]] = []
        for item in items:
            try:
                body = (item if isinstance(item, RewardRequest)
                        else RewardRequest.model_validate(item))
                reward, kind = self._reward_of(body)
            except ValidationError as exc:
                results.append(Invalid(validation_details(exc)))
            except ServiceError as exc:
                results.append(exc)
            else:
                valid.append((len(results), body, reward, kind))
                results.append({"event_id": body.event_id, "status": "accepted",
                                "reward": reward})
        outcomes = await self.store.rewards(
            [(body.event_id, reward, kind, "" if body.action_id is None else str(body.action_id))
             for _, body, reward, kind in valid],
            aggregation=self.settings.aggregation, history_length=self.settings.history_length,
            history_seconds=self.settings.retention_seconds)
        for (index, body, _, _), outcome in zip(valid, outcomes, strict=True):
            if outcome != "accepted":
                results[index] = _reward_refusal(body.event_id, outcome)
        return results

    def _mode(self, spec: str) -> Literal["live", "apprentice", "logging-only"]:
        mode = self.settings.learning_mode
        if mode == "online" or (mode == "apprentice" and self.models[spec].graduated):
            return "live"
        return mode

    # -- routes -------------------------------------------------------------------------------
    async def _rank_one(self, body: RankRequest, headers: Headers) -> Response:
        """``POST /v1/rank``, reached through ``http.hot_route`` or the route below."""
        self._authorize(headers)
        return http.json_response(_or_raise((await self._rank_many([body]))[0]),
                                  headers={"x-raybandit-replica": self.replica})

    async def _reward_one(self, body: RewardRequest, headers: Headers) -> Response:
        """``POST /v1/reward``, as ``_rank_one``."""
        self._authorize(headers)
        return http.json_response(_or_raise((await self._reward_many([body]))[0]), status=202)

    @app.post("/v1/rank", response_model=RankResponse, tags=["v1"])
    async def rank(self, body: RankRequest, request: Request) -> Response:
        """Rank the actions for a context; `chosen` is the one to show."""
        return await self._rank_one(body, request.headers)

    @app.post("/v1/rank/batch", response_model=BatchRankResponse, tags=["v1"])
    async def rank_batch(self, body: BatchRankRequest, request: Request) -> Response:
        """Many decisions in one call; a bad item gets its own error, the rest are ranked."""
        self._authorize(request.headers)
        if len(body.requests) > self.settings.max_batch:
            raise TooLarge(f"at most {self.settings.max_batch} requests per batch")
        return http.json_response({"results": [
            {"status": r.status, "detail": r.detail} if isinstance(r, ServiceError) else r
            for r in await self._rank_many(body.requests)]})

    @app.post("/v1/reward", response_model=RewardResponse, status_code=202, tags=["v1"])
    async def reward(self, body: RewardRequest, request: Request) -> Response:
        """Report the outcome of a decision: a number, or a typed interaction."""
        return await self._reward_one(body, request.headers)

    @app.post("/v1/events", response_model=EventsResponse, tags=["v1"])
    async def events(self, body: EventsRequest, request: Request) -> Response:
        """Many rewards in one call, with a status per item."""
        self._authorize(request.headers)
        if len(body.events) > self.settings.max_batch:
            raise TooLarge(f"at most {self.settings.max_batch} events per call")
        results = []
        for index, (item, outcome) in enumerate(
                zip(body.events, await self._reward_many(body.events), strict=True)):
            event_id = item.get("event_id")
            # EventResult's keys; the event id only where the caller gave a string
            result = {"index": index, "event_id": event_id if isinstance(event_id, str) else None,
                      "status": 202, "detail": None}
            if isinstance(outcome, ServiceError):
                result.update(status=outcome.status, detail=outcome.detail)
            results.append(result)
        return http.json_response({"accepted": sum(r["status"] == 202 for r in results),
                                   "results": results})

    @app.post("/v1/activate", response_model=ActivateResponse, status_code=202, tags=["v1"])
    async def activate(self, body: ActivateRequest, request: Request) -> ActivateResponse:
        """Activate a deferred decision: from now on it waits for its reward."""
        self._authorize(request.headers)
        outcome = await self.store.activate(body.event_id,
                                            time.time() + self.settings.reward_wait_seconds)
        if outcome == "unknown":
            raise NotFound(f"unknown event id {body.event_id!r}")
        return ActivateResponse(event_id=body.event_id,
                                status="activated" if outcome == "activated" else "already active")

    @app.get("/v1/stats", response_model=StatsResponse, tags=["v1"])
    async def stats(self, request: Request) -> StatsResponse:
        """Decisions, rewards, mean reward (95% CI), model version, pending, top items."""
        self._authorize(request.headers)
        arms = list(self.settings.arm_shares)
        raw = await self.store.stats(arms)
        modes = {spec: self._mode(spec) for spec in arms}
        versions = {spec: self.models[spec].version for spec in arms}
        return stats_response(raw, self.settings.control_arm, versions, modes)

    @app.get("/v1/admin/model", tags=["admin"], response_class=Response)
    async def export_model(self, request: Request) -> Response:
        """The latest published model (``Policy.save`` bytes): a backup (API key needed)."""
        self._authorize_admin(request.headers)
        data = await self.store.redis.hget(model_key(self.settings.control_arm), "bytes")
        if data is None:
            data = self.model.policy.save()
        return Response(content=data, media_type="application/octet-stream")

    @app.put("/v1/admin/model", tags=["admin"])
    async def import_model(self, request: Request) -> dict[str, Any]:
        """Restore a model exported before; learning continues from it (API key needed)."""
        self._authorize_admin(request.headers)
        data = await request.body()
        try:
            read_header(data)
        except LearnerError as exc:
            raise Invalid(str(exc)) from exc
        version = await self._learner_call("import_model", data)
        return {"status": "imported", "model_version": version}

    @app.post("/v1/admin/reset", tags=["admin"])
    async def reset(self, request: Request) -> dict[str, Any]:
        """Start over from a fresh model (API key needed)."""
        self._authorize_admin(request.headers)
        version = await self._learner_call("reset")
        return {"status": "reset", "model_version": version}

    @app.get("/healthz", tags=["ops"])
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(self) -> JSONResponse:
        try:
            await self.store.ping()
        except Exception as exc:  # any store failure means not ready
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready", "policies": list(self.models),
                             "model_versions": {s: m.version for s, m in self.models.items()}})

    @app.get("/ui", include_in_schema=False)
    async def ui(self) -> Any:
        page = UI_DIR / "index.html"
        if not page.exists():
            raise NotFound("the playground page is not part of this build")
        return FileResponse(page)

    @app.get("/ui/catalog.json", include_in_schema=False)
    async def ui_catalog(self) -> Any:
        """The demo catalog the playground ranks (a few dozen articles with features)."""
        return FileResponse(UI_DIR / "catalog.json")

    def check_health(self) -> None:
        if not all(m.alive() for m in self.models.values()):
            raise RuntimeError("model refresh thread died")


__all__ = ["Ingress", "app"]
