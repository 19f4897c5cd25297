"""A worker's /metrics (Prometheus text format), /healthz and /livez endpoints on one port.

``/healthz`` is readiness (is the worker doing its job: frames arrive, partitions are
assigned and consumed); ``/livez`` is liveness (is the loop turning at all), for probes that
restart a stuck process and must not restart one that merely waits for work. The server
binds 127.0.0.1 unless configured (``kafka.metrics_host``): the deployments that scrape it
from another container set 0.0.0.0 explicitly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from audience.core.errors import ConfigError

log = logging.getLogger(__name__)


def serve(registry: CollectorRegistry, port: int, healthy: Callable[[], bool],
          host: str = "127.0.0.1", alive: Callable[[], bool] | None = None
          ) -> ThreadingHTTPServer | None:
    """Serve in a daemon thread; returns the server (``shutdown()`` it) or None if port is 0.

    ``healthy`` answers /healthz (readiness), ``alive`` /livez (default: ``healthy``)."""
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if path == "/metrics":
                code, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(registry)
            elif path in ("/healthz", "/livez"):
                ok = healthy() if path == "/healthz" or alive is None else alive()
                code, ctype = (200 if ok else 503), "text/plain"
                body = b"ok\n" if ok else b"unhealthy\n"
            else:
                code, ctype = 404, "text/plain"
                body = b"not found: try /metrics, /healthz or /livez\n"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve /metrics on port {port} of {host} ({exc.strerror}): "
                          "set kafka.metrics_port (env AUDIENCE_KAFKA__METRICS_PORT) to a free "
                          "port, or 0 to turn it off, and kafka.metrics_host to an address "
                          "of this machine") from None
    threading.Thread(target=server.serve_forever, name=f"metrics-{port}", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)
    return server
