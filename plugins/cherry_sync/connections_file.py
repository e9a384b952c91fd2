"""Write the practices' Airflow connections file that the deployment's secrets backend reads.

docker-compose.yml points every Airflow component at Airflow's `LocalFilesystemBackend`, which reads one JSON file:
connection id -> connection (docs/deployment.md, "Credentials for many practices"). This builds that file from a
CSV read on standard input (never from the command line, where keys would land in the shell history and `ps`):

    slug,cherry_api_key,crm_token,crm_location_id
    glow-aesthetics,ck_live_...,pit-...,VqUpQy0KMSvqGXQppo4a
    harbor-dermatology,ck_live_...,,             # crm_auth: oauth: no CRM token or location of its own

    python -m cherry_sync.connections_file --output secrets/connections.json \\
        --cherry-base-url https://... --crm-base-url https://services.leadconnectorhq.com < practices.csv

Connection ids come from the registry ($CHERRY_SYNC_REGISTRY, else include/practices.yml; `--registry` to choose):
`cherry_conn_id` gets a `cherry` connection (password = the API key), `crm_conn_id` (`crm_auth: pit`) an
`aesthetix_crm` connection (password = the Private Integration Token, extra `location_id`). `--merge` keeps the
existing file's other connections (adding or re-keying a few practices of many). The file is written with mode
0600, replaced atomically. Prints counts and connection ids, never a key.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from cherry_sync.provider import CHERRY_CONN_TYPE, CRM_CONN_TYPE

COLUMNS = ("slug", "cherry_api_key", "crm_token", "crm_location_id")


class ConnectionsFileError(ValueError):
    """The CSV or the existing file cannot be turned into a connections file; the message names the row."""


def practice_connections(
    rows: list[dict[str, str]], registry, *, cherry_base_url: str, crm_base_url: str
) -> dict[str, dict[str, Any]]:
    """Connection id -> connection (Airflow's JSON form) for each CSV row, checked against the registry."""
    connections: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        slug = (row.get("slug") or "").strip()
        practice = registry.get(slug)
        if practice is None:
            raise ConnectionsFileError(f"line {number}: {slug!r} is not a practice of the registry")
        if slug in seen:
            raise ConnectionsFileError(f"line {number}: {slug!r} appears twice")
        seen.add(slug)
        key = (row.get("cherry_api_key") or "").strip()
        if not key:
            raise ConnectionsFileError(f"line {number}: {slug}: no cherry_api_key")
        connections[practice.cherry_conn_id] = {"conn_type": CHERRY_CONN_TYPE, "host": cherry_base_url, "password": key}
        token, location = (row.get("crm_token") or "").strip(), (row.get("crm_location_id") or "").strip()
        if practice.crm_auth == "oauth":
            if token or location:
                raise ConnectionsFileError(
                    f"line {number}: {slug} is crm_auth: oauth (the marketplace app reaches its location): "
                    "leave crm_token and crm_location_id empty"
                )
            continue
        if not token or not location:
            raise ConnectionsFileError(f"line {number}: {slug}: crm_token and crm_location_id are both needed")
        connections[practice.crm_conn_id] = {
            "conn_type": CRM_CONN_TYPE,
            "host": crm_base_url,
            "password": token,
            "extra": {"location_id": location},
        }
    return connections


def missing_practices(connections: dict[str, Any], registry) -> list[str]:
    """Enabled practices whose connections the file would not hold (what the preflight would refuse)."""
    missing = []
    for practice in registry.enabled():
        needed = [practice.cherry_conn_id] + ([practice.crm_conn_id] if practice.crm_auth == "pit" else [])
        absent = [conn_id for conn_id in needed if conn_id not in connections]
        if absent:
            missing.append(f"{practice.slug} ({', '.join(absent)})")
    return missing


def write_private(path: Path, connections: dict[str, Any]) -> None:
    """Write the file readable by its owner only, replacing any old one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # Created 0600 (not chmod-ed after writing): the keys are never readable by others, even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a stale tmp file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        json.dump(connections, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def read_rows(stream) -> list[dict[str, str]]:
    reader = csv.DictReader(line for line in stream if line.strip() and not line.lstrip().startswith("#"))
    if reader.fieldnames is None or set(COLUMNS) - {name.strip() for name in reader.fieldnames}:
        raise ConnectionsFileError(f"standard input: a CSV with the header {','.join(COLUMNS)} is expected")
    return [{(k or "").strip(): v or "" for k, v in row.items()} for row in reader]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cherry_sync.connections_file",
        description="Write the practices' connections file (JSON, mode 0600) from a CSV on standard input "
        f"({','.join(COLUMNS)}).",
    )
    parser.add_argument("--output", type=Path, required=True, help="the file to write, e.g. secrets/connections.json")
    parser.add_argument(
        "--registry", help="the practice registry (default $CHERRY_SYNC_REGISTRY or include/practices.yml)"
    )
    parser.add_argument(
        "--cherry-base-url", default=os.environ.get("CHERRY_BASE_URL"), help="Cherry's API base URL ($CHERRY_BASE_URL)"
    )
    parser.add_argument(
        "--crm-base-url", default=os.environ.get("CRM_BASE_URL"), help="the CRM's API base URL ($CRM_BASE_URL)"
    )
    parser.add_argument("--merge", action="store_true", help="keep the existing file's other connections")
    return parser


def main(argv: list[str] | None = None, stdin=None) -> int:
    args = build_parser().parse_args(argv)
    from cherry_sync.registry import RegistryFileError, load_registry

    if not args.cherry_base_url or not args.crm_base_url:
        print(
            "error: --cherry-base-url and --crm-base-url (or CHERRY_BASE_URL, CRM_BASE_URL) are needed", file=sys.stderr
        )
        return 2
    try:
        registry = load_registry(args.registry)
        if registry.errors:
            raise ConnectionsFileError(
                f"the registry has errors: run python -m cherry_sync.registry {args.registry or ''}"
            )
        connections: dict[str, Any] = {}
        if args.merge and args.output.exists():
            try:
                connections = json.loads(args.output.read_text())
            except json.JSONDecodeError as exc:  # the message names line and column, never the content
                raise ConnectionsFileError(f"{args.output}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        connections.update(
            practice_connections(
                read_rows(stdin or sys.stdin),
                registry,
                cherry_base_url=args.cherry_base_url,
                crm_base_url=args.crm_base_url,
            )
        )
    except (ConnectionsFileError, RegistryFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_private(args.output, connections)
    print(f"wrote {len(connections)} connections to {args.output} (mode 0600)")
    for practice in missing_practices(connections, registry):
        print(f"missing: enabled practice {practice}: the preflight will refuse to start without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
