"""Code Ray runs in each of the service's worker processes as it starts
(``runtime_env={"worker_process_setup_hook": ...}``), for what Ray Serve 2.60 offers no option.

Ray Serve's HAProxy ingress renders a config whose Prometheus and stats frontends bind every
interface (``bind :9101``, ``bind *:8404``). The service promises to listen on the configured
host only, so the template is narrowed to the HTTP frontend's host before HAProxyManager
renders it. If a Ray upgrade changes those lines, nothing is replaced and
``tests/integration/test_cli_serve.py`` (which checks every listening socket) fails.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any

_MODULE = "ray.serve._private.haproxy"
_WIDE_BINDS = {
    "bind :{{ config.metrics_port }}": "bind {{ config.frontend_host }}:{{ config.metrics_port }}",
    "bind *:{{ config.stats_port }}": "bind {{ config.frontend_host }}:{{ config.stats_port }}",
}


def bind_haproxy_to_configured_host() -> None:
    """Narrow the template when (and only if) this worker imports Serve's HAProxy module:
    importing it up front would cost every Ray worker (simulator sweeps too) ~1 s."""
    if _MODULE in sys.modules:
        _narrow(sys.modules[_MODULE])
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def _narrow(haproxy: Any) -> None:
    template = haproxy.HAPROXY_CONFIG_TEMPLATE
    for wide, narrow in _WIDE_BINDS.items():
        template = template.replace(wide, narrow)
    haproxy.HAPROXY_CONFIG_TEMPLATE = template


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of ``_MODULE`` to narrow it once loaded."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # one module, once; and no recursion into ourselves
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            _narrow(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
