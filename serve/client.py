"""A small Python client for the HTTP API v1 (used by the tests and benchmarks).

>>> client = Client("http://127.0.0.1:8000")
>>> client.base_url
'http://127.0.0.1:8000'
"""

from __future__ import annotations

from typing import Any

import httpx


class APIError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise APIError(response.status_code, detail)
        return response.json()

    def rank(self, context: dict[str, Any], actions: list[dict[str, Any]], **options: Any
             ) -> dict[str, Any]:
        body = {"context": context, "actions": actions,
                **{k: v for k, v in options.items() if v is not None}}
        return self._call("POST", "/v1/rank", json=body)

    def rank_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", "/v1/rank/batch", json={"requests": requests})["results"]

    def reward(self, event_id: str, reward: float | None = None, *, type: str | None = None,
               value: float | None = None, action_id: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = {"event_id": event_id}
        if reward is not None:
            body["reward"] = reward
        for key, item in (("type", type), ("value", value), ("action_id", action_id)):
            if item is not None:
                body[key] = item
        return self._call("POST", "/v1/reward", json=body)

    def events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/v1/events", json={"events": events})

    def activate(self, event_id: str) -> dict[str, Any]:
        return self._call("POST", "/v1/activate", json={"event_id": event_id})

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/v1/stats")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
