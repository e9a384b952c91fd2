"""`python -m sandbox`: start both API sandboxes (Cherry and the CRM) on loopback, for a person or a script.

Prints each sandbox's base URL and demo credentials (sandbox keys and tokens are not secret). With
`--describe-json FILE` it also writes them as JSON, which `make demo` / `make airflow` use to build the
Airflow connections. Runs until interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from sandbox.cherry import cli as cherry_cli
from sandbox.common.server import LOOPBACK, start_in_thread
from sandbox.crm import cli as crm_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Start the Cherry and CRM (HighLevel v2) sandboxes on loopback.",
        epilog="Each sandbox also runs alone: python -m sandbox.cherry --help / python -m sandbox.crm --help",
    )
    parser.add_argument("--describe-json", type=Path, help="write base URLs and credentials to this JSON file")
    cherry_cli.add_arguments(parser, prefix="cherry-")
    crm_cli.add_arguments(parser, prefix="crm-")
    return parser


def describe(cherry_app, cherry_url: str, crm_app, crm_url: str) -> dict:
    state = cherry_app.state.cherry
    practices = []
    for book in state.books.values():
        key = next(k.key for k in state.keys.values() if k.practice_id == book.practice.id and k.activated)
        practices.append(
            {"id": book.practice.id, "name": book.practice.name, "timezone": book.practice.timezone, "api_key": key}
        )
    locations = [
        {"id": loc.id, "name": loc.name, "token": loc.token, "timezone": loc.timezone}
        for loc in crm_app.state.crm.locations.values()
    ]
    return {
        "cherry": {"base_url": cherry_url, "practices": practices},
        "crm": {"base_url": crm_url, "locations": locations},
    }


def main(argv: list[str] | None = None) -> int:
    from sandbox.cherry.app import create_app as create_cherry
    from sandbox.crm.app import create_app as create_crm

    args = build_parser().parse_args(argv)
    cherry_config = cherry_cli.config_from_args(args, prefix="cherry-")
    crm_config = crm_cli.config_from_args(args, prefix="crm-")
    cherry_app, crm_app = create_cherry(cherry_config), create_crm(crm_config)
    try:
        cherry = start_in_thread(cherry_app, host=args.cherry_host or LOOPBACK, port=args.cherry_port)
        crm = start_in_thread(crm_app, host=crm_config.host, port=crm_config.port)
    except (ValueError, OSError) as exc:
        print(f"cannot start the sandboxes: {exc}", file=sys.stderr)
        return 2
    print(cherry_cli.describe(cherry_app, cherry.base_url), flush=True)
    print(crm_cli.describe(crm.base_url, crm_app), flush=True)
    if args.describe_json:
        info = describe(cherry_app, cherry.base_url, crm_app, crm.base_url)
        tmp = args.describe_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(args.describe_json)  # atomic: a reader never sees half a file
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cherry.stop()
        crm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
