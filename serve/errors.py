"""Domain errors and their HTTP statuses, mapped in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from learners import LearnerError


class ServiceError(Exception):
    status = 400

    def __init__(self, detail: Any) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class Invalid(ServiceError):
    status = 422


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class Unavailable(ServiceError):
    status = 503


def validation_details(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """A validation error's items as the API reports them: where, what, which kind."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]


def install(app: FastAPI) -> None:
    """Register the mapping on a FastAPI app."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(LearnerError)
    async def _learner(_: Request, exc: LearnerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _store_down(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"state store unavailable: {exc}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(exc)}, status_code=422)
