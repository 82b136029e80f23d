"""Real infrastructure for the integration tests: a real redis-server, a real local Ray and
the real Serve app on a loopback port, all started here and stopped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve.client import Client
from serve.redis_server import EmbeddedRedis, free_port
from serve.runtime import Service
from serve.settings import Settings

FAST = {
    "reward_wait_seconds": 2.0,
    "publish_interval_ms": 50,
    "refresh_interval_ms": 50,
}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def service_settings(redis_server, ray_session) -> Settings:
    return Settings(redis_url=redis_server.url, port=free_port(), policy="vw:squarecb",
                    replicas=2, **FAST)


@pytest.fixture(scope="session")
def service(service_settings) -> Iterator[Service]:
    running = Service(service_settings)
    running.start()
    yield running
    running.stop()


@contextlib.contextmanager
def swapped_service(service: Service, tmp_path: Path, **settings: Any) -> Iterator[Service]:
    """The session's service stopped, one with other ``settings`` on a fresh Redis started
    in its place, and the session's service back afterwards."""
    service.stop()
    try:
        with EmbeddedRedis(tmp_path / "redis") as store:
            other = Service(Settings.model_validate({
                **service.settings.model_dump(), "redis_url": store.url, **FAST, **settings}))
            other.start()
            try:
                yield other
            finally:
                other.stop()
    finally:
        service.start()


@pytest.fixture()
def client(service) -> Iterator[Client]:
    with Client(service.settings.url) as api:
        yield api


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")

