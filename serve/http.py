"""The FastAPI app's HTTP plumbing, kept off the hot path: request bodies parsed by orjson,
a JSON 413 for bodies declared too large, answers encoded once, the error mapping, and the
hot routes answered ahead of FastAPI's routing (``hot_route``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, ORJSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers

from serve import errors

_limits = {"max_body_bytes": 1_000_000}

Model = TypeVar("Model", bound=BaseModel)
HotHandler = Callable[[Any, Headers], Awaitable[Response]]
_hot_routes: dict[tuple[str, str], tuple[type[BaseModel], HotHandler]] = {}


def new_app(**options: Any) -> FastAPI:
    """A FastAPI app with everything below installed (``options`` go to ``FastAPI``)."""
    app = FastAPI(default_response_class=ORJSONResponse, **options)
    app.router.route_class = _OrjsonRoute
    errors.install(app)
    app.add_middleware(_HotRoutes)
    app.add_middleware(_DeclaredBodyLimit)  # added last: runs first
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


def hot_route(method: str, path: str, model: type[Model],
              handler: Callable[[Model, Headers], Awaitable[Response]]) -> None:
    """Answer ``method path`` ahead of FastAPI's routing: a JSON body that is a valid
    ``model`` goes to ``handler(body, headers)``, the function the app's own route for the
    path calls too.

    FastAPI's routing, dependency solving and body handling cost ~150 us per request in
    this process (a rank measured 174-186 us through the app against 26-44 us for the same
    parse, validation and answer as a bare ASGI call), of the ~0.9 ms a rank costs the
    replica. Anything else (another content type, a body that does not parse or validate)
    goes on to the app's route, which stays the documented one and answers invalid input
    with FastAPI's usual 422. Errors the handler raises get the app's error mapping
    (``errors.response_for``)."""
    _hot_routes[(method, path)] = (model, handler)


def _parse_body(body: bytes, model: type[Model]) -> Model | None:
    try:
        return model.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None


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


class _HotRoutes:
    """Runs the ``hot_route`` handlers (see there); every other request, and each one a
    handler passes on, goes to the app with its body intact."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = (_hot_routes.get((scope["method"], scope["path"]))
                 if scope["type"] == "http" else None)
        if route is None:
            await self.inner(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if errors.media_type(headers) != "application/json":
            await self.inner(scope, receive, send)  # FastAPI's own rules for other types
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        model, handler = route
        parsed = _parse_body(body, model)
        if parsed is None:
            await self.inner(scope, _replay(body, receive), send)
            return
        try:
            response = await handler(parsed, headers)
        except Exception as exc:
            mapped = errors.response_for(exc)
            if mapped is None:
                raise
            response = mapped
        await response(scope, receive, send)


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` that hands out ``body`` again, then what the client sends next."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
