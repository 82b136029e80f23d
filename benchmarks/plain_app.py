"""The baseline a user would otherwise write: one process, FastAPI + uvicorn + one VW
workspace, no Redis, no logging of decisions. ``python -m benchmarks.plain_app PORT``."""

from __future__ import annotations

import random
import sys
from typing import Any

from fastapi import FastAPI
from vowpalwabbit import Workspace

app = FastAPI()
workspace = Workspace(cb_explore_adf=True, epsilon=0.05, quiet=True, interactions=["ca", "ci"])
rng = random.Random(0)


def _text(features: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" if isinstance(v, str) else f"{k}:{v}" for k, v in features.items())


@app.post("/rank")
async def rank(body: dict[str, Any]) -> dict[str, Any]:
    shared = "shared |c " + _text(body["context"])
    lines = [f"|a {_text(a['features'])} |i id={a['id']}" for a in body["actions"]]
    pmf = workspace.predict([shared, *lines])
    u, total = rng.random(), 0.0
    chosen = len(pmf) - 1
    for i, p in enumerate(pmf):
        total += p
        if u < total:
            chosen = i
            break
    return {"chosen": body["actions"][chosen]["id"], "probability": pmf[chosen]}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
