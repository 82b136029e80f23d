"""Code Ray runs in each of the service's worker processes as it starts
(``runtime_env={"worker_process_setup_hook": ...}``), for what Ray Serve 2.60 offers no option.
Each patch applies as (and only if) the process imports the module it concerns: importing
them up front would cost every Ray worker (simulator sweeps too) ~1 s.

* Ray Serve's HAProxy ingress renders a config whose Prometheus and stats frontends bind every
  interface (``bind :9101``, ``bind *:8404``). The service promises to listen on the
  configured host only, so the template is narrowed to the HTTP frontend's host before
  HAProxyManager renders it. If a Ray upgrade changes those lines, nothing is replaced and
  ``tests/integration/test_cli_serve.py`` (which checks every listening socket) fails.
* Ray Serve's ``_private.utils`` imports pandas only to register a JSON encoder for
  DataFrames, which the service never returns: ~0.45 s and ~40 MB in every Serve process
  (controller, HAProxy manager, proxy, replicas, and the driver). Pandas looks absent while
  that one module loads; any later ``import pandas`` (River, MLflow) gets the real one.
* Ray registers serializers for Ray Data's Arrow objects when a process first builds a Serve
  deployment or starts Serve, importing pyarrow (~28 MB, in 6 of the service's processes)
  for objects the service never sends through Ray. They are registered only where pyarrow
  is loaded anyway (Parquet export, Ray Data); elsewhere Arrow objects would still pickle.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

_HAPROXY = "ray.serve._private.haproxy"
_SERVE_UTILS = "ray.serve._private.utils"
_ARROW_SERIALIZATION = "ray._private.arrow_serialization"
_WIDE_BINDS = {
    "bind :{{ config.metrics_port }}": "bind {{ config.frontend_host }}:{{ config.metrics_port }}",
    "bind *:{{ config.stats_port }}": "bind {{ config.frontend_host }}:{{ config.stats_port }}",
}

Execute = Callable[[Any], None]


def prepare_worker() -> None:
    """The setup hook (also called by ``raybandit serve`` itself before it imports Serve)."""
    if _HAPROXY in sys.modules:  # loaded already: its template can still be narrowed
        _narrow(sys.modules[_HAPROXY])
    _patch_on_import(_HAPROXY, _narrowed)
    _patch_on_import(_SERVE_UTILS, _without_pandas)
    _patch_on_import(_ARROW_SERIALIZATION, _arrow_serializers_only_if_loaded)


def _narrow(haproxy: Any) -> None:
    template = haproxy.HAPROXY_CONFIG_TEMPLATE
    for wide, narrow in _WIDE_BINDS.items():
        template = template.replace(wide, narrow)
    haproxy.HAPROXY_CONFIG_TEMPLATE = template


def _narrowed(execute: Execute, haproxy: Any) -> None:
    execute(haproxy)
    _narrow(haproxy)


def _without_pandas(execute: Execute, module: Any) -> None:
    if "pandas" in sys.modules:  # already paid for: nothing to save
        execute(module)
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # Python's "not importable"
    try:
        execute(module)
    finally:
        if sys.modules.get("pandas", ...) is None:
            del sys.modules["pandas"]


def _arrow_serializers_only_if_loaded(execute: Execute, module: Any) -> None:
    execute(module)
    register = module._register_custom_datasets_serializers

    def register_if_loaded(context: Any) -> None:
        if "pyarrow" in sys.modules:
            register(context)

    module._register_custom_datasets_serializers = register_if_loaded


def _patch_on_import(name: str, wrap: Callable[[Execute, Any], None]) -> None:
    """Have ``wrap(execute, module)`` load module ``name`` when it is first imported."""
    if name in sys.modules:
        return
    if not any(isinstance(f, _PatchOnImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport(name, wrap))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of module ``name`` with ``wrap``."""

    def __init__(self, name: str, wrap: Callable[[Execute, Any], None]) -> None:
        self.name = name
        self.wrap = wrap

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.name:
            return None
        sys.meta_path.remove(self)  # one module, once; and no recursion into ourselves
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, wrap = spec.loader, self.wrap
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            wrap(execute, module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
