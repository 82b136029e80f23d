"""Exporting the decision log from Redis, whether or not the service is running."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from learners import Policy
from learners.decision_log import COLUMNS, write_log
from serve.models import read_checkpoint
from serve.redis_server import EmbeddedRedis, running_url
from serve.state import LOG, parse_log_entry


def iter_log(client: Any, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every final decision in log order, paging through the stream."""
    start = "-"
    while True:
        entries = client.xrange(LOG, min=start, max="+", count=page)
        for _, fields in entries:
            record = parse_log_entry(fields)
            yield {k: v for k, v in record.items() if k in COLUMNS}
        if len(entries) < page:
            return
        start = "(" + entries[-1][0].decode()


@contextlib.contextmanager
def _connection(data_dir: str | Path | None, redis_url: str | None) -> Iterator[Any]:
    """A client for the service's Redis: the given URL, the live embedded server, or the
    persisted embedded data started just for this call."""
    embedded: EmbeddedRedis | None = None
    if redis_url is None:
        folder = Path(data_dir or "raybandit-data") / "redis"
        redis_url = running_url(folder)
        if redis_url is None:
            if not folder.exists():
                raise FileNotFoundError(f"no service data in {folder}")
            embedded = EmbeddedRedis(folder).start()
            redis_url = embedded.url
    try:
        yield redis.Redis.from_url(redis_url, socket_connect_timeout=2.0)
    finally:
        if embedded is not None:
            embedded.stop()


def export_log(out: str | Path, *, data_dir: str | Path | None = None,
               redis_url: str | None = None) -> int:
    """Write the log to ``out`` (.jsonl or .parquet); returns the number of decisions."""
    with _connection(data_dir, redis_url) as client:
        return write_log(iter_log(client), out)


def current_policy(spec: str | None = None, *, data_dir: str | Path | None = None,
                   redis_url: str | None = None) -> Policy:
    """The service's latest checkpointed model (of ``spec``, or of its only policy)."""
    with _connection(data_dir, redis_url) as client:
        keys = sorted(k.decode() for k in client.scan_iter("rb:model:*"))
        specs = [k.removeprefix("rb:model:") for k in keys]
        if spec is None:
            if len(specs) != 1:
                raise LookupError(f"say which policy to take (--policy); the service has {specs}")
            spec = specs[0]
        if spec not in specs:
            raise LookupError(f"the service has no model for {spec!r}; it has {specs}")
        return read_checkpoint(client, spec).policy
