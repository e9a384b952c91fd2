"""Container entrypoint of the `sandboxes` service: both API sandboxes, reachable from the compose network.

`python -m sandbox` binds loopback only (sandbox/common/server.py refuses any other address: its keys and
tokens are not secret). Inside a container, loopback is invisible to the other services, so this script
starts `python -m sandbox` on private loopback ports and relays TCP connections to them from the public
ports (8300: Cherry, 8420: CRM) on all of the container's interfaces. The relay is byte-for-byte: the
sandboxes see the caller's Host header, so the URLs they build (media links, pagination) are the ones the
caller used. Only the compose network (and the host's loopback, see docker-compose.yml) can reach them.

    python docker/sandboxes.py [python -m sandbox flags...]   serve (flags pass through, ports are fixed)
    python docker/sandboxes.py --healthcheck                  exit 0 when both answer through the relay
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"
# public port (what the other services use) -> loopback port the sandbox binds
RELAYS = {"cherry": (8300, 18300), "crm": (8420, 18420)}
STARTUP_SECONDS = 120


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


def _relay_to(port: int):
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    return handle


async def _serve(child: subprocess.Popen) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = [
        await asyncio.start_server(_relay_to(private), host="0.0.0.0", port=public)  # noqa: S104 (see docstring)
        for public, private in RELAYS.values()
    ]
    for name, (public, _) in RELAYS.items():
        print(f"{name} sandbox reachable on port {public} of this container", flush=True)
    while not stop.is_set() and child.poll() is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    for server in servers:
        server.close()
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        return 0
    print(f"python -m sandbox exited with {child.returncode}", file=sys.stderr, flush=True)
    return child.returncode or 1


def serve(sandbox_args: list[str]) -> int:
    describe = Path(tempfile.mkdtemp(prefix="sandboxes-")) / "sandboxes.json"
    args = [sys.executable, "-m", "sandbox", *sandbox_args, "--describe-json", str(describe)]
    args += ["--cherry-host", LOOPBACK, "--cherry-port", str(RELAYS["cherry"][1])]
    args += ["--crm-host", LOOPBACK, "--crm-port", str(RELAYS["crm"][1])]
    child = subprocess.Popen(args)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not describe.exists():
        if child.poll() is not None:
            return child.returncode or 1
        if time.monotonic() > deadline:
            child.kill()
            print("the sandboxes did not start in time", file=sys.stderr)
            return 1
        time.sleep(0.2)
    info = json.loads(describe.read_text())
    print(
        f"sandboxes up: {len(info['cherry']['practices'])} Cherry practices, {len(info['crm']['locations'])} CRM locations",
        flush=True,
    )
    return asyncio.run(_serve(child))


def healthcheck() -> int:
    for name, (public, _) in RELAYS.items():
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{public}/openapi.json", timeout=5) as response:  # noqa: S310
                if response.status != 200:
                    print(f"{name}: HTTP {response.status}", file=sys.stderr)
                    return 1
        except OSError as exc:
            print(f"{name}: {type(exc).__name__}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--healthcheck"]:
        sys.exit(healthcheck())
    sys.exit(serve(sys.argv[1:]))
