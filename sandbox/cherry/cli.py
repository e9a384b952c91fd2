"""Command line: serve a Cherry sandbox in the foreground.

    python -m sandbox.cherry --seed 7 --practices 3 --patients 200 --port 8300

`add_arguments(parser, prefix)` and `config_from_args(args, prefix)` are reusable, so a launcher that
starts several sandboxes can expose these flags as `--cherry-seed`, `--cherry-port`...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sandbox.cherry.config import CherrySandboxConfig, cherry_rate_limits
from sandbox.common.server import LOOPBACK, serve_forever

DEFAULT_PORT = 8300
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> argparse.ArgumentParser:
    """Add the Cherry sandbox flags to `parser`, each named `--<prefix><flag>`."""
    group = parser.add_argument_group("Cherry sandbox")
    p = f"--{prefix}"
    group.add_argument(f"{p}seed", type=int, default=7, help="data seed (default 7)")
    group.add_argument(f"{p}practices", type=int, default=3, help="number of practices (default 3)")
    group.add_argument(f"{p}patients", type=int, default=200, help="patients per practice (default 200)")
    group.add_argument(f"{p}now", default=None, help="clock start, RFC 3339 (default: today 00:00 UTC)")
    group.add_argument(f"{p}host", default=LOOPBACK, help="loopback address to bind (default 127.0.0.1)")
    group.add_argument(f"{p}port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    group.add_argument(f"{p}malformed-share", type=float, default=0.0, help="share of patients seeded malformed")
    group.add_argument(f"{p}rate-limit", type=int, default=20, help="requests per burst window per key (20)")
    group.add_argument(f"{p}rate-window", type=float, default=1.0, help="burst window in seconds (1)")
    group.add_argument(f"{p}daily-limit", type=int, default=100_000, help="requests per day per key (100000)")
    group.add_argument(f"{p}no-rate-limit", action="store_true", help="disable rate limiting")
    return parser


def _get(args: argparse.Namespace, prefix: str, name: str):
    return getattr(args, (prefix + name).replace("-", "_"))


def config_from_args(args: argparse.Namespace, prefix: str = "") -> CherrySandboxConfig:
    """Build the sandbox config from flags added by `add_arguments` with the same prefix."""
    limits = cherry_rate_limits(
        _get(args, prefix, "rate-limit"), _get(args, prefix, "rate-window"), _get(args, prefix, "daily-limit")
    )
    limits.enabled = not _get(args, prefix, "no-rate-limit")
    values = {
        "seed": _get(args, prefix, "seed"),
        "practices": _get(args, prefix, "practices"),
        "patients_per_practice": _get(args, prefix, "patients"),
        "malformed_share": _get(args, prefix, "malformed-share"),
        "rate_limits": limits,
    }
    if _get(args, prefix, "now"):
        values["now"] = _get(args, prefix, "now")
    return CherrySandboxConfig(**values)


def describe(app, base_url: str) -> str:
    """The banner: where the sandbox listens and each practice's demo API key (sandbox keys are not secret)."""
    state = app.state.cherry
    lines = [f"Cherry sandbox on {base_url}  (contract: {base_url}/docs, clock: {state.now()})"]
    for book in state.books.values():
        keys = [k.key for k in state.keys.values() if k.practice_id == book.practice.id and k.activated]
        lines.append(f"  {book.practice.id}  {book.practice.name} ({book.practice.timezone})  key: {keys[0]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from sandbox.cherry.app import create_app

    parser = add_arguments(argparse.ArgumentParser(prog="python -m sandbox.cherry", description=__doc__))
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK_HOSTS:
        print(f"the sandbox listens on loopback only, not {args.host!r}", file=sys.stderr)
        return 2
    app = create_app(config_from_args(args))
    print(describe(app, f"http://{args.host}:{args.port}"), flush=True)
    serve_forever(app, host=args.host, port=args.port, log_level=app.state.cherry.config.log_level)
    return 0
