"""Run a sandbox app on a loopback port, in a background thread (tests) or in the foreground (people).

Sandboxes listen on loopback only: their keys and tokens are demo values, not secrets. The one exception is a
container (docker-compose.yml's `sandboxes` service), whose loopback the other services cannot reach: there
`SANDBOX_LISTEN_ALL_INTERFACES=1` also allows binding 0.0.0.0 / ::, inside the compose network only.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

import requests
import uvicorn

LOOPBACK = "127.0.0.1"


ALL_INTERFACES_ENV = "SANDBOX_LISTEN_ALL_INTERFACES"


def _allowed_hosts() -> tuple[str, ...]:
    loopback = ("127.0.0.1", "localhost", "::1")
    if os.environ.get(ALL_INTERFACES_ENV, "").strip() == "1":
        return (*loopback, "0.0.0.0", "::")  # noqa: S104 - explicit opt-in, for a container's network only
    return loopback


def _bind(host: str, port: int) -> socket.socket:
    if host not in _allowed_hosts():
        raise ValueError(
            f"sandboxes listen on loopback only, not {host!r} (in a container: {ALL_INTERFACES_ENV}=1 allows 0.0.0.0)"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK if host == "localhost" else host, port))
    sock.listen(2048)
    return sock


@dataclass
class RunningServer:
    """A sandbox server started by `start_in_thread`; `stop()` shuts it down."""

    base_url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def _config(app, log_level: str) -> uvicorn.Config:
    # Access logs would print request paths with query strings; keep them off by default.
    return uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_keep_alive=30)


def start_in_thread(app, host: str = LOOPBACK, port: int = 0, log_level: str = "warning") -> RunningServer:
    """Start `app` on a free loopback port (or `port`) and return once it accepts connections."""
    sock = _bind(host, port)
    server = uvicorn.Server(_config(app, log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox-server")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("sandbox server did not start")
        time.sleep(0.02)
    bound_port = sock.getsockname()[1]
    return RunningServer(f"http://{LOOPBACK}:{bound_port}", bound_port, server, thread)


def serve_forever(app, host: str = LOOPBACK, port: int = 0, log_level: str = "warning") -> None:
    """Serve `app` in the foreground until interrupted."""
    sock = _bind(host, port)
    uvicorn.Server(_config(app, log_level)).run(sockets=[sock])


def admin_session() -> requests.Session:
    """A `requests.Session` for a test harness's own calls to a sandbox (admin routes, inspection, bare API calls).

    Every request goes on a new connection (`Connection: close`). A kept-alive connection that the server closes as
    idle (uvicorn's `timeout_keep_alive`) can be picked for the next request at the instant it closes, and that
    request then fails with "connection reset": a harness that waits about as long as the keep-alive timeout (a test
    sleeping 30 s) hits it. On loopback a new connection costs next to nothing.
    """
    session = requests.Session()
    session.headers["Connection"] = "close"
    return session
