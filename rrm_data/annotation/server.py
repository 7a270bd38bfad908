"""Serving the labelling app: a listening socket checked up front, then uvicorn on it.

The socket is bound before anything else is done, so a port in use is one clear line and
not a half-started server; uvicorn then runs on that socket until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import errno
import socket

import uvicorn

from rrm_data.annotation.app import AnnotationApp
from rrm_data.errors import RrmError


def url_host(host: str) -> str:
    """``host`` as written in a URL or Host header: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear line when the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Like uvicorn: a restart may bind while old connections linger in TIME_WAIT; a port
    # that another socket listens on is still refused.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise RrmError(f"port {port} on {host} is in use; pick another with port=") from None
        raise RrmError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    return sock


def serve(app: AnnotationApp, sock: socket.socket) -> None:
    """Run the app on ``sock`` until stopped; then free its clip renderers."""
    # httptools parses HTTP about twice as fast as h11; no access log (nothing to leak)
    server = uvicorn.Server(uvicorn.Config(app.app, http="httptools", loop="asyncio",
                                           log_level="warning", access_log=False,
                                           lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        app.close()


__all__ = ["bind", "serve", "url_host"]
