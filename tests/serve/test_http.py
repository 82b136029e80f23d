"""The hot routes (``serve.http.hot_route``): valid JSON bodies are answered ahead of
FastAPI's routing by the function the documented route calls too; everything else reaches
the route as before, with its body intact and FastAPI's usual answers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Request, Response
from pydantic import BaseModel
from starlette.datastructures import Headers

from serve import http
from serve.errors import NotFound

PATH = "/test/echo"
# A JSON type FastAPI parses but the hot path leaves to it (it takes application/json only)
ROUTED = {"content-type": "application/vnd.test+json"}


class Echo(BaseModel):
    text: str
    fail: str | None = None


class Client:
    """Requests straight into the ASGI app, as a server would make them."""

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def post(self, path: str, **options: Any) -> httpx.Response:
        async def post() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport,
                                         base_url="http://test") as api:
                return await api.post(path, **options)

        return asyncio.run(post())


@pytest.fixture()
def client() -> Iterator[tuple[Client, Counter[str]]]:
    calls: Counter[str] = Counter()
    app = http.new_app(title="test")

    async def answer(body: Echo, headers: Headers) -> Response:
        calls["answer"] += 1
        if body.fail == "missing":
            raise NotFound(f"no {body.text!r}")
        if body.fail == "bug":
            raise RuntimeError("a bug")
        return http.json_response({"text": body.text, "key": headers.get("x-key")})

    @app.post(PATH)
    async def route(body: Echo, request: Request) -> Response:
        calls["route"] += 1
        return await answer(body, request.headers)

    http.hot_route("POST", PATH, Echo, answer)
    try:
        yield Client(app), calls
    finally:
        http._hot_routes.pop(("POST", PATH))


def test_valid_json_is_answered_ahead_of_the_route(client) -> None:
    api, calls = client
    response = api.post(PATH, json={"text": "hi"}, headers={"x-key": "k"})
    assert response.status_code == 200 and response.json() == {"text": "hi", "key": "k"}
    assert calls == {"answer": 1}
    # a body sent in chunks is read whole
    async def chunks():
        for chunk in (b'{"te', b'xt": "chunked"}'):
            yield chunk

    response = api.post(PATH, content=chunks(),
                        headers={"content-type": "application/json; charset=utf-8"})
    assert response.json() == {"text": "chunked", "key": None}
    assert calls == {"answer": 2}


def test_other_requests_reach_the_route_with_their_body(client) -> None:
    api, calls = client
    response = api.post(PATH, content=b'{"text": "plain"}', headers=ROUTED)
    assert response.json() == {"text": "plain", "key": None}
    assert calls == {"route": 1, "answer": 1}
    # FastAPI's own rules for content types: not said to be JSON, the body is not read as
    # JSON; the 422 says what to send
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}):
        response = api.post(PATH, content=b'{"text": "plain"}', headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0] == {
            "loc": ["header", "content-type"], "type": "content_type",
            "msg": "the body must be JSON, sent with Content-Type: application/json"}
    assert calls == {"route": 1, "answer": 1}
    # invalid input gets FastAPI's 422, with what was wrong where
    response = api.post(PATH, json={"txt": "typo"})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]
    response = api.post(PATH, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    assert calls == {"route": 1, "answer": 1}


def test_errors_get_the_same_answers_on_both_paths(client) -> None:
    api, calls = client
    body = b'{"text": "x", "fail": "missing"}'
    hot = api.post(PATH, content=body, headers={"content-type": "application/json"})
    routed = api.post(PATH, content=body, headers=ROUTED)
    assert hot.status_code == routed.status_code == 404
    assert hot.json() == routed.json() == {"detail": "no 'x'"}
    assert calls == {"answer": 2, "route": 1}
    body = b'{"text": "x", "fail": "bug"}'
    assert api.post(PATH, content=body, headers={"content-type": "application/json"}
                    ).status_code == 500
    assert api.post(PATH, content=body, headers=ROUTED).status_code == 500


def test_a_body_declared_too_large_is_refused_first(client) -> None:
    api, calls = client
    http.limit_body_bytes(2048)
    try:
        response = api.post(PATH, json={"text": "x" * 4096})
    finally:
        http.limit_body_bytes(1_000_000)
    assert response.status_code == 413 and "over 2048 bytes" in response.json()["detail"]
    assert not calls
