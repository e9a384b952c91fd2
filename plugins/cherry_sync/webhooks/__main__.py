"""Serve the webhook receiver alone: `python -m cherry_sync.webhooks [--host H] [--port P]`.

Connections come from the environment (`AIRFLOW_CONN_*`) or the secrets backend Airflow is configured with; the
registry from `CHERRY_SYNC_REGISTRY` or include/practices.yml.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from cherry_sync.webhooks.receiver import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cherry_sync.webhooks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Access logs would print request paths only, but stay off like the rest of the product's servers.
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=False, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
