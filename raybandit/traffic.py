"""Simulated users driving a running service through its real HTTP API.

Each round takes a context and candidates from a simulator environment, asks ``/v1/rank``,
draws the user's response from the environment's click probabilities and reports it to
``/v1/reward`` (a non-click is simply not reported: the service learns it as the default
reward when the wait ends). Used for demos, for the shipped service log, and as load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serve.client import Client
from simulator.environments import make_environment


@dataclass
class TrafficReport:
    decisions: int
    rewards: int
    mean_reward: float
    mean_expected: float
    optimal: float


def drive(url: str, env_spec: str, decisions: int, seed: int = 0,
          report_zero: bool = False, progress: Callable[[int], None] | None = None,
          api_key: str | None = None) -> TrafficReport:
    env = make_environment(env_spec)
    total = expected = optimal = 0.0
    rewards = 0
    with Client(url, api_key=api_key) as client:
        for rnd in env.rounds(decisions, seed):
            answer = client.rank(rnd.context, rnd.actions)
            index = [a["id"] for a in rnd.actions].index(answer["chosen"])
            reward = rnd.reward(index)
            if reward or report_zero:
                client.reward(answer["event_id"], reward)
                rewards += 1
            total += reward
            expected += rnd.expected[index]
            optimal += rnd.best
            if progress is not None:
                progress(1)
    return TrafficReport(decisions, rewards, total / decisions, expected / decisions,
                         optimal / decisions)
