"""ruff and mypy are part of the suite, so style and type errors fail the build."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PACKAGES = ["learners", "simulator", "serve", "experiments", "raybandit", "benchmarks"]


def test_ruff_is_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
