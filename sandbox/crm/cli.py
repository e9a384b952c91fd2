"""Command line: `python -m sandbox.crm [--port 8420] [--locations 3] ...`.

`add_arguments(parser, prefix)` and `config_from_args(args, prefix)` are reusable, so a combined
launcher can offer `--crm-port`, `--crm-seed`, ... next to the Cherry sandbox's own flags.
"""

from __future__ import annotations

import argparse
import sys
import threading

from sandbox.common.ratelimit import RateLimitSettings
from sandbox.common.server import LOOPBACK, start_in_thread
from sandbox.crm.app import create_app
from sandbox.crm.config import CrmSandboxConfig

DEFAULT_PORT = 8420


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "crm-") -> None:
    """Add the CRM sandbox flags, each named `--<prefix><name>`."""
    d = CrmSandboxConfig()
    r = d.rate_limits
    group = parser.add_argument_group("CRM sandbox (HighLevel API v2)")
    group.add_argument(f"--{prefix}seed", type=int, default=d.seed, help="seed for ids and tokens")
    group.add_argument(f"--{prefix}locations", type=int, default=d.locations, help="locations to create")
    group.add_argument(f"--{prefix}host", default=LOOPBACK, help="loopback address to listen on")
    group.add_argument(f"--{prefix}port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    group.add_argument(f"--{prefix}burst-limit", type=int, default=r.burst_limit, help="requests per window")
    group.add_argument(f"--{prefix}burst-window", type=float, default=r.burst_window_seconds, help="seconds")
    group.add_argument(f"--{prefix}daily-limit", type=int, default=r.daily_limit, help="requests per day")
    group.add_argument(
        f"--{prefix}no-rate-limit", action="store_true", help="switch rate limiting off (counting continues)"
    )
    group.add_argument(
        f"--{prefix}location-timezones",
        default=",".join(d.location_timezones),
        help="comma-separated IANA zones of the seeded locations, cycled (default: the Cherry sandbox's practice zones)",
    )
    group.add_argument(
        f"--{prefix}search-lag", type=float, default=d.search_lag_seconds, help="search index lag in seconds"
    )
    group.add_argument(
        f"--{prefix}oauth-ttl",
        type=float,
        default=d.oauth_access_token_ttl_seconds,
        help="life of OAuth access tokens in seconds",
    )


def config_from_args(args: argparse.Namespace, prefix: str = "crm-") -> CrmSandboxConfig:
    """The CrmSandboxConfig described by flags added with the same `prefix`."""
    p = prefix.replace("-", "_")

    def arg(name: str):
        return getattr(args, p + name)

    return CrmSandboxConfig(
        seed=arg("seed"),
        locations=arg("locations"),
        host=arg("host"),
        port=arg("port"),
        rate_limits=RateLimitSettings(
            enabled=not arg("no_rate_limit"),
            burst_limit=arg("burst_limit"),
            burst_window_seconds=arg("burst_window"),
            daily_limit=arg("daily_limit"),
        ),
        search_lag_seconds=arg("search_lag"),
        oauth_access_token_ttl_seconds=arg("oauth_ttl"),
        location_timezones=tuple(zone.strip() for zone in arg("location_timezones").split(",") if zone.strip()),
    )


def describe(base_url: str, app) -> str:
    """What a person needs to point a client at the sandbox (tokens are not secret here)."""
    lines = [f"CRM sandbox (HighLevel API v2) at {base_url}", "  locations (id, token, name, time zone):"]
    for loc in app.state.crm.locations.values():
        lines.append(f"    {loc.id}  {loc.token}  {loc.name} ({loc.timezone})")
    oauth = app.state.crm.oauth.app
    lines.append(f"  OAuth app: client_id {oauth.client_id}, company {oauth.company_id} (secret: /_sandbox/oauth/app)")
    lines.append(f"  admin: {base_url}/_sandbox/locations, {base_url}/_sandbox/stats, {base_url}/docs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.crm", description=__doc__.splitlines()[0])
    add_arguments(parser, prefix="")
    config = config_from_args(parser.parse_args(argv), prefix="")
    app = create_app(config)
    try:
        server = start_in_thread(app, host=config.host, port=config.port)
    except ValueError as exc:
        parser.error(str(exc))
    print(describe(server.base_url, app), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
