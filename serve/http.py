"""The FastAPI app's HTTP plumbing, kept off the hot path: request bodies parsed by orjson,
a JSON 413 for bodies declared too large, answers encoded once, the error mapping."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, ORJSONResponse
from fastapi.routing import APIRoute

from serve import errors

_limits = {"max_body_bytes": 1_000_000}


def new_app(**options: Any) -> FastAPI:
    """A FastAPI app with everything below installed (``options`` go to ``FastAPI``)."""
    app = FastAPI(default_response_class=ORJSONResponse, **options)
    app.router.route_class = _OrjsonRoute
    errors.install(app)
    app.add_middleware(_DeclaredBodyLimit)
    return app


def limit_body_bytes(limit: int) -> None:
    _limits["max_body_bytes"] = limit


def json_response(content: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """The hot routes answer plain dicts encoded once by orjson; FastAPI would validate and
    encode a returned model a second time (the route's ``response_model`` still documents
    it, and tests hold the two equal)."""
    return Response(orjson.dumps(content), status_code=status, headers=headers,
                    media_type="application/json")


class _OrjsonRequest(Request):
    """Request bodies parsed by orjson: the standard library's parser was ~13% of the
    replica's time on batch rank. Its errors are ``json.JSONDecodeError``s, so a malformed
    body is still FastAPI's 422; NaN/Infinity literals and integers over 64 bits, which the
    standard parser let through, are refused there too."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class _OrjsonRoute(APIRoute):
    """FastAPI's documented way to use a custom Request class for every route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_orjson(request: Request) -> Response:
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return with_orjson


class _DeclaredBodyLimit:
    """A JSON 413 for a body whose declared length is over the limit, before anything reads
    it. A plain ASGI middleware: Starlette's ``@app.middleware`` costs a task per request.
    (FastAPI's own ``max_body_size`` would run first and answer in plain text.)"""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            limit = _limits["max_body_bytes"]
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > limit:
                        response = JSONResponse(
                            {"detail": f"request body over {limit} bytes"}, status_code=413)
                        await response(scope, receive, send)
                        return
                    break
        await self.inner(scope, receive, send)
