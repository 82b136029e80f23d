"""Code Ray runs in each of the service's worker processes as it starts
(``runtime_env={"worker_process_setup_hook": ...}``), for what Ray Serve 2.60 offers no option.

Ray Serve's HAProxy ingress renders a config whose Prometheus and stats frontends bind every
interface (``bind :9101``, ``bind *:8404``). The service promises to listen on the configured
host only, so the template is narrowed to the HTTP frontend's host before HAProxyManager
renders it. If a Ray upgrade changes those lines, nothing is replaced and
``tests/integration/test_cli_serve.py`` (which checks every listening socket) fails.
"""

from __future__ import annotations

_WIDE_BINDS = {
    "bind :{{ config.metrics_port }}": "bind {{ config.frontend_host }}:{{ config.metrics_port }}",
    "bind *:{{ config.stats_port }}": "bind {{ config.frontend_host }}:{{ config.stats_port }}",
}


def bind_haproxy_to_configured_host() -> None:
    from ray.serve._private import haproxy

    template = haproxy.HAPROXY_CONFIG_TEMPLATE
    for wide, narrow in _WIDE_BINDS.items():
        template = template.replace(wide, narrow)
    haproxy.HAPROXY_CONFIG_TEMPLATE = template
