"""The decision log (contract): JSON Lines, or Parquet with the same columns.

One decision per line: ``event_id``, ``timestamp`` (ISO 8601), ``context``, ``actions``
(``[{id, features}]``), ``chosen``, ``probability`` (of ``chosen`` under the logging
policy), ``reward`` (number or null) and ``policy``. In Parquet, ``context`` and ``actions``
are JSON text columns (their shape differs from row to row). Unknown fields are ignored when
reading. The service writes this format and the simulator reads it, so it lives here.

>>> import io
>>> record = {"event_id": "e1", "timestamp": "2026-01-01T00:00:00Z", "context": {"u": "tom"},
...           "actions": [{"id": "a", "features": {}}], "chosen": "a", "probability": 1.0,
...           "reward": 1, "policy": "fixed", "extra": "ignored"}
>>> [d.chosen for d in read_jsonl(io.StringIO(json.dumps(record) + "\\n"))]
['a']
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from learners.types import LoggedDecision

COLUMNS = ("event_id", "timestamp", "context", "actions", "chosen", "probability", "reward",
           "policy")
_JSON_COLUMNS = ("context", "actions")


def to_record(decision: LoggedDecision) -> dict[str, Any]:
    """The contract's JSON object for one decision."""
    return decision.model_dump(mode="json", include=set(COLUMNS))


def read_jsonl(handle: IO[str]) -> Iterator[LoggedDecision]:
    for number, line in enumerate(handle, 1):
        if line.strip():
            try:
                yield LoggedDecision.model_validate_json(line)
            except ValueError as exc:
                raise ValueError(f"line {number} is not a decision: {exc}") from exc


def write_jsonl(decisions: Iterable[LoggedDecision | dict[str, Any]], path: str | Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for decision in decisions:
            record = decision if isinstance(decision, dict) else to_record(decision)
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def write_parquet(
    decisions: Iterable[LoggedDecision | dict[str, Any]], path: str | Path, batch_size: int = 10_000
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("event_id", pa.string()), ("timestamp", pa.string()), ("context", pa.string()),
        ("actions", pa.string()), ("chosen", pa.string()), ("probability", pa.float64()),
        ("reward", pa.float64()), ("policy", pa.string()),
    ])
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for decision in decisions:
            record = dict(decision if isinstance(decision, dict) else to_record(decision))
            for column in _JSON_COLUMNS:
                record[column] = json.dumps(record[column], separators=(",", ":"))
            record["chosen"] = json.dumps(record["chosen"])  # keeps int ids ints on the way back
            batch.append({c: record.get(c) for c in COLUMNS})
            if len(batch) >= batch_size:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                count += len(batch)
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema))
            count += len(batch)
    return count


def read_parquet(path: str | Path, batch_size: int = 10_000) -> Iterator[LoggedDecision]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(str(path)) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                for column in _JSON_COLUMNS:
                    if isinstance(row.get(column), str):
                        row[column] = json.loads(row[column])
                chosen = row.get("chosen")
                if isinstance(chosen, str):
                    # a bare string id written by another tool stays as it is
                    with contextlib.suppress(ValueError):
                        row["chosen"] = json.loads(chosen)
                yield LoggedDecision.model_validate(row)


def write_log(decisions: Iterable[LoggedDecision | dict[str, Any]], path: str | Path) -> int:
    """Write ``.jsonl`` or ``.parquet`` by the file's extension; returns the count."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return write_parquet(decisions, path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return write_jsonl(decisions, path)
    raise ValueError(f"the log file must end in .jsonl or .parquet, got {path}")
