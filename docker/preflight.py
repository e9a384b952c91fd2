"""airflow-init's product checks, run once before any other Airflow component starts (docker/init.sh).

1. The secrets every Airflow component shares are set, no variable still holds a .env.example placeholder
   ("change-me..."), and the Fernet key is a valid Fernet key (a bad one only fails later, when the first connection is encrypted).
2. The practice registry (include/practices.yml, or $CHERRY_SYNC_REGISTRY) validates: any error stops the
   deployment here instead of silently skipping a practice at run time.
3. The configured secrets backend loads (a connections file: exists, readable, valid JSON), then every connection
   the product needs resolves (from the secrets backend or AIRFLOW_CONN_*):
   the sync store, the SMTP server (with its `from_email` extra), and each enabled practice's Cherry and
   CRM connections (host + password, and the CRM's `location_id` extra). Practices on OAuth (`crm_auth: oauth`)
   have no CRM connection of their own: they need the marketplace app's connection (host, client id, client
   secret, `company_id` and `app_id` extras) and the token key connection (valid Fernet keys), once for all of them
   (an agency authorization not stored yet by the cherry_onboard DAG is noted by step 4). Skipped while the Fernet
   key is bad: Airflow cannot build any connection with it and would call each one missing.
4. Each enabled practice's time zones agree: the registry's `timezone`, Cherry's practice zone and the CRM location's
   zone (one `GET /v1/practice` and one `GET /locations/{id}` per practice; cherry_sync.sync.zones). A disagreement
   stops the deployment, unless the registry pins the practice's zone (`timezone_pinned: true`: printed, not
   fatal). An API that cannot be asked now (not up yet, unreachable) is only noted: every run checks again.
5. The sync store is migrated to the newest schema (idempotent; tasks would otherwise do it on first use).

Prints what it checked (connection ids, counts, the store revision): never a secret or a host's password.
Exit status 1 with one line per problem when anything is wrong.
"""

from __future__ import annotations

import os
import sys

SHARED_SECRETS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
PLACEHOLDER_PREFIX = "change-me"


def secret_problems(env: dict[str, str]) -> list[str]:
    problems = []
    for name in SHARED_SECRETS:
        if not env.get(name):
            problems.append(f"{name} is empty (see .env.example)")
    # A placeholder left anywhere: a shared secret, a database password inside a URL or a connection.
    for name in sorted(env):
        if PLACEHOLDER_PREFIX in env[name]:
            problems.append(f"{name} still holds a .env.example placeholder ({PLACEHOLDER_PREFIX}...): generate it")
    fernet_key = env.get("AIRFLOW__CORE__FERNET_KEY", "")
    if fernet_key and not fernet_key.startswith(PLACEHOLDER_PREFIX) and not fernet_key_usable(env):
        problems.append("AIRFLOW__CORE__FERNET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes)")
    return problems


def fernet_key_usable(env: dict[str, str]) -> bool:
    """Whether Airflow can build connections with this key: an empty key means no encryption, a bad one fails.

    Airflow encrypts a connection's password as soon as it builds the connection, even from AIRFLOW_CONN_*;
    with a bad key every secrets backend lookup fails and Airflow reports each connection as not found.
    """
    fernet_key = env.get("AIRFLOW__CORE__FERNET_KEY", "")
    if not fernet_key:
        return True
    from cryptography.fernet import Fernet

    try:
        Fernet(fernet_key.encode())
    except (ValueError, TypeError):
        return False
    return True


def _connection(conn_id: str):
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None


def _configured_backend():
    """The [secrets] backend instance every component uses (workers fall back to it), or None."""
    from airflow.configuration import conf, get_custom_secret_backend

    if not conf.get("secrets", "backend", fallback=""):
        return None
    return get_custom_secret_backend()


def where_to_define(conn_id: str) -> str:
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    try:
        backend = _configured_backend()
    except Exception:  # reported by secrets_backend_problems
        backend = None
    if backend is None:
        return f"set {variable}"
    connections_file = getattr(backend, "connections_file", None)
    place = f"the connections file {connections_file}" if connections_file else f"the {type(backend).__name__}"
    return f"add it to {place}, or set {variable}"


def secrets_backend_problems() -> list[str]:
    """The configured secrets backend loads; a file backend's connections file exists, is readable and parses.

    One line naming the file, instead of every practice's connections reported missing one by one. Never prints
    the file's content: JSON syntax errors name a line and column only.
    """
    from airflow.secrets.local_filesystem import LocalFilesystemBackend, load_connections_dict

    try:
        backend = _configured_backend()
    except Exception as exc:  # its own message may hold kwargs (a token): the type only
        return [f"the secrets backend (AIRFLOW__SECRETS__BACKEND) could not be created: {type(exc).__name__}"]
    if not isinstance(backend, LocalFilesystemBackend):
        return []
    path = backend.connections_file
    if not path:
        return ["AIRFLOW__SECRETS__BACKEND_KWARGS names no connections_file_path"]
    if not os.path.isfile(path):
        return [
            f"the connections file {path} does not exist: write secrets/connections.json "
            "(python -m cherry_sync.connections_file; for the sandboxes, copy secrets/connections.example.json)"
        ]
    if not os.access(path, os.R_OK):
        return [f"the connections file {path} is not readable by uid {os.getuid()}: chown it to that user on the host"]
    try:
        load_connections_dict(path)
    except Exception as exc:
        errors = getattr(exc, "parse_errors", None)
        detail = "; ".join(str(error) for error in errors) if errors else type(exc).__name__
        return [f"the connections file {path} cannot be read: {detail}"]
    return []


def connection_problems(registry) -> tuple[list[str], list[str]]:
    from cherry_sync.context import SMTP_CONN_ID, STORE_CONN_ID

    problems: list[str] = []
    checked: list[str] = []

    def need(conn_id: str, *, password: bool = False, extras: tuple[str, ...] = (), host: bool = True):
        conn = _connection(conn_id)
        if conn is None:
            problems.append(f"connection {conn_id!r} is not defined ({where_to_define(conn_id)})")
            return None
        if host and not conn.host:
            problems.append(f"connection {conn_id!r} has no host")
        if password and not conn.password:
            problems.append(f"connection {conn_id!r} has no password (the API key or token)")
        for key in extras:
            if not (conn.extra_dejson or {}).get(key):
                problems.append(f"connection {conn_id!r} needs the {key!r} extra")
        checked.append(conn_id)
        return conn

    need(STORE_CONN_ID)
    need(SMTP_CONN_ID, extras=("from_email",))
    for practice in registry.enabled():
        need(practice.cherry_conn_id, password=True)
        if practice.crm_auth == "pit":
            need(practice.crm_connection_id, password=True, extras=("location_id",))
    if any(practice.crm_auth == "oauth" for practice in registry.enabled()):
        problems += oauth_problems(need)
    return problems, checked


def oauth_problems(need) -> list[str]:
    """What every practice on OAuth shares: the marketplace app's connection and the token key (valid keys)."""
    from cherry_sync.context import OAUTH_APP_CONN_ID, TOKEN_KEY_CONN_ID
    from cherry_sync.store.oauth_tokens import TokenCipher, TokenKeyError

    problems: list[str] = []
    app = need(OAUTH_APP_CONN_ID, password=True, extras=("company_id", "app_id"))
    if app is not None and not (app.login or (app.extra_dejson or {}).get("client_id")):
        problems.append(f"connection {OAUTH_APP_CONN_ID!r} has no login (the marketplace app's client id)")
    key = need(TOKEN_KEY_CONN_ID, password=True, host=False)
    if key is not None and key.password:
        try:
            TokenCipher(key.password, source=f"connection {TOKEN_KEY_CONN_ID!r}")
        except TokenKeyError as exc:
            problems.append(str(exc))  # which key of the list, never the key
    return problems


def zone_problems(registry) -> tuple[list[str], list[str]]:
    """(problems, notes): time zones that disagree; practices whose zones could not be read now."""
    from cherry_sync.sync.zones import TimezoneMismatch, check_practice

    problems: list[str] = []
    notes: list[str] = []
    for practice in registry.enabled():
        report = check_practice(practice)
        if report.reason_code == TimezoneMismatch.reason_code:
            problems.append(f"practice {report}")
        elif not report.ok:
            notes.append(f"practice {report} (every run checks again)")
        else:
            notes.append(f"practice {report}")
    return problems, notes


def migrate_store() -> str:
    from cherry_sync.context import STORE_CONN_ID
    from cherry_sync.store.engine import engine_from_connection, store_from_engine
    from cherry_sync.store.migrate import current_revision

    engine = engine_from_connection(_connection(STORE_CONN_ID))
    store_from_engine(engine)
    return current_revision(engine) or "empty"


def main() -> int:
    problems = secret_problems(dict(os.environ))

    from cherry_sync.registry import RegistryFileError, default_registry_path, load_registry

    try:
        registry = load_registry()
    except RegistryFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems += [f"registry {default_registry_path()}: {error}" for error in registry.errors]
    if not fernet_key_usable(dict(os.environ)):
        # Not "every connection is missing" (what Airflow would report): none can be read with this key.
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("note: connections not checked: Airflow cannot read any until the Fernet key is valid", file=sys.stderr)
        return 1
    backend_problems = secrets_backend_problems()
    problems += backend_problems
    if backend_problems:
        # Not "every practice's connection is missing": the backend itself is not usable yet.
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    conn_problems, checked = connection_problems(registry)
    problems += conn_problems
    notes: list[str] = []
    if not problems:
        zone_errors, notes = zone_problems(registry)
        problems += zone_errors
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    print(
        f"registry: {len(registry.practices)} practices, {len(registry.enabled())} enabled; "
        f"connections present: {', '.join(checked)}"
    )
    for note in notes:
        print(f"time zones: {note}")
    print(f"sync store at revision {migrate_store()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
