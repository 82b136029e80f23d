"""Domain errors and their HTTP statuses, mapped in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
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


def response_for(exc: Exception) -> JSONResponse | None:
    """The answer for an error raised while handling a request; None for one that is not
    ours to map (a bug: Starlette answers it with a 500)."""
    if isinstance(exc, ServiceError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)
    if isinstance(exc, LearnerError):
        return JSONResponse({"detail": str(exc)}, status_code=422)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return JSONResponse({"detail": f"state store unavailable: {exc}"}, status_code=503)
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"detail": validation_details(exc)}, status_code=422)
    return None


# FastAPI reads a body as JSON only when the request says it is JSON; without that (``curl -d``
# sends a form type) its only complaint was "Input should be a valid dictionary".
_CONTENT_TYPE = {"loc": ["header", "content-type"], "type": "content_type",
                 "msg": "the body must be JSON, sent with Content-Type: application/json"}


def media_type(headers: Mapping[str, str]) -> str:
    """The request's ``Content-Type`` without its parameters, lower case ("" when absent)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _json_content(request: Request) -> bool:
    kind = media_type(request.headers)
    return kind == "application/json" or (kind.startswith("application/")
                                          and kind.endswith("+json"))


MAPPED = (ServiceError, LearnerError, RedisConnectionError, RedisTimeoutError,
          RequestValidationError)


def install(app: FastAPI) -> None:
    """Register the mapping on a FastAPI app."""

    async def _handler(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestValidationError) and not _json_content(request):
            return JSONResponse({"detail": [_CONTENT_TYPE, *validation_details(exc)]},
                                status_code=422)
        response = response_for(exc)
        assert response is not None  # registered for MAPPED only
        return response

    for kind in MAPPED:
        app.add_exception_handler(kind, _handler)
