"""Exporting the decision log from Redis, whether or not the service is running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from learners.decision_log import write_log
from serve.redis_server import EmbeddedRedis, running_url
from serve.state import LOG, parse_log_entry


def iter_log(client: Any, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every final decision in log order, paging through the stream."""
    start = "-"
    while True:
        entries = client.xrange(LOG, min=start, max="+", count=page)
        for entry_id, fields in entries:
            yield {k: v for k, v in parse_log_entry(entry_id, fields).items()
                   if k in ("event_id", "timestamp", "context", "actions", "chosen",
                            "probability", "reward", "policy")}
        if len(entries) < page:
            return
        start = "(" + entries[-1][0].decode()


def export_log(out: str | Path, *, data_dir: str | Path | None = None,
               redis_url: str | None = None) -> int:
    """Write the log to ``out`` (.jsonl or .parquet); returns the number of decisions."""
    embedded: EmbeddedRedis | None = None
    if redis_url is None:
        folder = Path(data_dir or "raybandit-data") / "redis"
        redis_url = running_url(folder)
        if redis_url is None:
            if not folder.exists():
                raise FileNotFoundError(f"no service data in {folder}")
            embedded = EmbeddedRedis(folder).start()  # reads the persisted log, then stops
            redis_url = embedded.url
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2.0)
        return write_log(iter_log(client), out)
    finally:
        if embedded is not None:
            embedded.stop()
