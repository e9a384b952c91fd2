"""Onboarding: is every practice of the registry ready to sync, and what is missing where it is not.

`onboarding_report()` reads the registry, lists the HighLevel marketplace app's installed locations (every page)
and matches them to the registry's entries: an OAuth entry by its `crm_location_id`, a PIT entry by its CRM
connection's `location_id` extra (reported as "PIT", with whether the app is installed there too). Per practice
it checks the Cherry connection (and, by default, that the Cherry key is active: one `ping`) and what its CRM
access needs: for OAuth the app connection, the token key, the agency token pair in the store and the app
installed on the location; for PIT the practice's CRM connection with its `location_id`. Installed locations no
entry claims are listed too. The report holds slugs, location ids and states only: never a token or a secret.

`exchange_authorization_code()` turns a fresh agency authorization code (single-use, valid ten minutes) into the
company token pair, stored encrypted by the token service.

Both run from the `cherry_onboard` DAG and from the command line:

    python -m cherry_sync.onboarding [--registry PATH] [--no-cherry-check] [--exchange-code]

`--exchange-code` reads the authorization code from standard input (never from the command line, where it would
stay in the shell history and the process list). The command prints the report's table and exits 1 when an
enabled practice is not ready (or a registry entry is invalid), 2 when the registry file cannot be read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cherry_sync.errors import CherrySyncError, Disposition

log = logging.getLogger(__name__)

PIT = "PIT"
OAUTH = "oauth"

# What a person does about each state that keeps a practice from being ready (the table's footnotes).
NEXT_STEPS = {
    "cherry_connection_missing": "create the practice's Cherry connection (its `cherry_conn_id`)",
    "cherry_key_not_activated": "ask the practice to activate its Cherry API key in the Cherry portal",
    "cherry_key_refused": "the Cherry API key is wrong or revoked: put the practice's current key in its connection",
    "cherry_forbidden": "Cherry denied the key access: check the key belongs to this practice",
    "cherry_unreachable": "Cherry did not answer: check the Cherry connection's host and run again",
    "crm_connection_missing": "create the practice's CRM connection (its `crm_conn_id`, PIT as password)",
    "crm_location_missing": "set the `location_id` extra of the practice's CRM connection",
    "app_connection_missing": "create the `cherry_sync_highlevel_app` connection (docs/deployment.md)",
    "token_key_missing": "create the `cherry_sync_token_key` connection with a Fernet key (docs/deployment.md)",
    "token_key_invalid": "`cherry_sync_token_key` holds no usable Fernet key, or not the one that encrypted the "
    "stored tokens: put that key back (after the new one), or run cherry_onboard with a new authorization code",
    "no_agency_token": "install the marketplace app for the agency and run cherry_onboard with the authorization code",
    "app_revoked": "the agency install was revoked: reinstall the app and run cherry_onboard with the new code",
    "app_unreachable": "the CRM did not answer the installed-locations call: check the app connection's host",
    "app_not_installed": "install the marketplace app on this location (or fix the entry's `crm_location_id`)",
}


@dataclass(frozen=True)
class PracticeRow:
    """One registry entry's readiness: ids and states only."""

    slug: str
    auth: str  # "oauth" or "PIT"
    enabled: bool
    location_id: str | None
    app_installed: bool | None  # None: unknown (the installed locations could not be listed)
    cherry: str  # "active", "unchecked" (key not pinged), or a `cherry_*` problem
    crm: str  # "ok" or a problem of NEXT_STEPS

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if self.cherry not in ("active", "unchecked"):
            found.append(self.cherry)
        if self.crm != "ok":
            found.append(self.crm)
        return tuple(found)

    @property
    def ready(self) -> bool:
        return not self.problems

    @property
    def state(self) -> str:
        return "ready" if self.ready else ", ".join(self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "auth": self.auth,
            "enabled": self.enabled,
            "location_id": self.location_id,
            "app_installed": self.app_installed,
            "cherry": self.cherry,
            "crm": self.crm,
            "state": self.state,
        }


@dataclass(frozen=True)
class OnboardingReport:
    """The registry matched against the app's installed locations, with every practice's state."""

    practices: tuple[PracticeRow, ...]
    app: str  # "ok", "not_configured" (no app connection: PIT-only deployments) or a problem of NEXT_STEPS
    installed_locations: tuple[str, ...] = ()
    invalid_entries: tuple[str, ...] = ()  # registry entries that failed validation (labels: slug or "entry #n")
    cherry_checked: bool = True

    @property
    def claimed_locations(self) -> set[str]:
        return {row.location_id for row in self.practices if row.location_id}

    @property
    def installed_without_entry(self) -> tuple[str, ...]:
        """Installed locations no registry entry names (OAuth or PIT)."""
        claimed = self.claimed_locations
        return tuple(loc for loc in self.installed_locations if loc not in claimed)

    @property
    def ready(self) -> tuple[str, ...]:
        return tuple(row.slug for row in self.practices if row.ready)

    @property
    def not_ready(self) -> tuple[str, ...]:
        """Enabled practices that are not ready (a disabled one is reported but holds nothing up)."""
        return tuple(row.slug for row in self.practices if row.enabled and not row.ready)

    @property
    def ok(self) -> bool:
        return not self.not_ready and not self.invalid_entries

    def as_dict(self) -> dict[str, Any]:
        """The XCom: ids and states only."""
        return {
            "ok": self.ok,
            "app": self.app,
            "cherry_checked": self.cherry_checked,
            "practices": [row.as_dict() for row in self.practices],
            "ready": list(self.ready),
            "not_ready": list(self.not_ready),
            "installed_locations": list(self.installed_locations),
            "installed_without_entry": list(self.installed_without_entry),
            "invalid_entries": list(self.invalid_entries),
        }

    def table(self) -> str:
        """The report as a fixed-width table with a verdict and what to do about each problem."""
        header = ("practice", "auth", "location", "app", "cherry", "crm", "state")
        rows = [header]
        for row in self.practices:
            installed = {True: "installed", False: "not installed", None: "unknown"}[row.app_installed]
            slug = row.slug if row.enabled else f"{row.slug} (disabled)"
            rows.append((slug, row.auth, row.location_id or "-", installed, row.cherry, row.crm, row.state))
        for loc in self.installed_without_entry:
            rows.append(("-", "-", loc, "installed", "-", "-", "no_registry_entry"))
        for label in self.invalid_entries:
            rows.append((label, "-", "-", "-", "-", "-", "invalid_registry_entry"))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append("")
        lines.append(f"app: {self.app}; installed locations: {len(self.installed_locations)}")
        if not self.cherry_checked:
            lines.append("Cherry keys: not checked (check_cherry_keys off)")
        lines.append(
            f"ready: {len(self.ready)}; not ready: {len(self.not_ready)}; installed without a registry entry: "
            f"{len(self.installed_without_entry)}; invalid registry entries: {len(self.invalid_entries)}"
        )
        problems = sorted({p for row in self.practices for p in row.problems})
        if self.app in NEXT_STEPS:
            problems = sorted({*problems, self.app})
        for problem in problems:
            lines.append(f"  {problem}: {NEXT_STEPS.get(problem, 'see docs/registry.md')}")
        if self.installed_without_entry:
            lines.append("  no_registry_entry: add a practice with `crm_auth: oauth` and this `crm_location_id`")
        if self.invalid_entries:
            lines.append("  invalid_registry_entry: run `python -m cherry_sync.registry` for the offending fields")
        return "\n".join(lines)


# -- connections --------------------------------------------------------------------------------


def _connection(conn_id: str) -> Any | None:
    """The Airflow connection, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


# -- Cherry ---------------------------------------------------------------------------------------


def cherry_state(conn_id: str, *, check_key: bool, pacer: Any = None) -> str:
    """The practice's Cherry side: connection present, and with `check_key` the key answers one `ping`."""
    if _connection(conn_id) is None:
        return "cherry_connection_missing"
    if not check_key:
        return "unchecked"
    from cherry_sync.hooks import errors
    from cherry_sync.hooks.cherry import CherryHook

    try:
        CherryHook(conn_id, pacer=pacer).ping()
    except errors.KeyNotActivatedError:
        return "cherry_key_not_activated"
    except errors.AuthError:
        return "cherry_key_refused"
    except errors.ForbiddenError:
        return "cherry_forbidden"
    except errors.ApiError as exc:
        log.warning("cherry ping of connection %s failed: %s", conn_id, exc.reason_code)
        return "cherry_unreachable"
    return "active"


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AppSide:
    """The marketplace app as this report sees it: a state and its installed locations."""

    state: str
    installed: tuple[str, ...] = ()


def _app_side(service: Any = None) -> _AppSide:
    """The app's connections, the stored agency token pair and the installed locations (every page)."""
    from cherry_sync.context import OAUTH_APP_CONN_ID, TOKEN_KEY_CONN_ID
    from cherry_sync.hooks import errors
    from cherry_sync.hooks.oauth import OAuthGrantRevoked
    from cherry_sync.store.oauth_tokens import COMPANY, TokenKeyError

    if service is None:
        if _connection(OAUTH_APP_CONN_ID) is None:
            return _AppSide("app_connection_missing")
        if _connection(TOKEN_KEY_CONN_ID) is None:
            return _AppSide("token_key_missing")
        try:
            service = token_service()
        except TokenKeyError:
            return _AppSide("token_key_invalid")
    stored = service.store.oauth_token(COMPANY, service.company_id)
    if stored is None or stored.refresh_token is None:
        return _AppSide("no_agency_token")
    try:
        locations = service.installed_locations(is_installed=True)
    except TokenKeyError:  # the stored pair was encrypted with a key the connection no longer holds
        return _AppSide("token_key_invalid")
    except OAuthGrantRevoked:
        return _AppSide("app_revoked")
    except errors.ApiError as exc:
        log.warning("the app's installed locations could not be listed: %s", exc.reason_code)
        return _AppSide("app_unreachable")
    # isInstalled=true asks for installed ones only; the flag is checked again in case a page holds others.
    ids = (str(loc["_id"]) for loc in locations if loc.get("_id") and loc.get("isInstalled", True))
    return _AppSide("ok", tuple(dict.fromkeys(ids)))


def onboarding_report(registry: Any = None, *, check_cherry_keys: bool = True, service: Any = None) -> OnboardingReport:
    """Match the registry to the app's installed locations and check every entry (see the module docstring).

    `registry`: the loaded registry (default: the deployment's file); `service`: the token service to ask (default:
    one on the app and token-key connections). Without the app connection and no OAuth entry, the app is
    `not_configured` and nothing is asked of it."""
    from cherry_sync.runtime import registry as load
    from cherry_sync.runtime import shared_pacer

    reg = registry if registry is not None else load()
    practices = list(reg.practices)
    uses_oauth = any(_auth(p) == OAUTH for p in practices)
    if service is not None or uses_oauth or _connection(_app_conn_id()) is not None:
        app = _app_side(service)
    else:
        app = _AppSide("not_configured")
    pacer = shared_pacer() if check_cherry_keys else None
    rows = []
    for practice in practices:
        cherry = cherry_state(practice.cherry_conn_id, check_key=check_cherry_keys, pacer=pacer)
        if _auth(practice) == OAUTH:
            location = practice.crm_location_id
            installed = location in app.installed if app.state == "ok" else None
            crm = app.state if app.state != "ok" else ("ok" if installed else "app_not_installed")
            rows.append(PracticeRow(practice.slug, OAUTH, practice.enabled, location, installed, cherry, crm))
        else:
            crm, location = _pit_state(practice.crm_conn_id)
            installed = (location in app.installed) if app.state == "ok" and location else None
            rows.append(PracticeRow(practice.slug, PIT, practice.enabled, location, installed, cherry, crm))
    invalid = tuple(dict.fromkeys(error.practice for error in reg.errors))
    return OnboardingReport(
        practices=tuple(rows),
        app=app.state,
        installed_locations=app.installed,
        invalid_entries=invalid,
        cherry_checked=check_cherry_keys,
    )


def _auth(practice: Any) -> str:
    return OAUTH if practice.crm_auth == "oauth" else PIT


def _app_conn_id() -> str:
    from cherry_sync.context import OAUTH_APP_CONN_ID

    return OAUTH_APP_CONN_ID


def _pit_state(conn_id: str | None) -> tuple[str, str | None]:
    conn = _connection(conn_id) if conn_id else None
    if conn is None:
        return "crm_connection_missing", None
    location = (conn.extra_dejson or {}).get("location_id")
    if not location:
        return "crm_location_missing", None
    return "ok", str(location)


def log_report(report: OnboardingReport, logger: logging.Logger = log) -> None:
    """The table in the log, one line per row (ids and states only)."""
    for line in report.table().splitlines():
        logger.info("%s", line)


# -- the OAuth side (the token service of hooks/oauth.py) ---------------------------------------


def token_service(store: Any = None, pacer: Any = None) -> Any:
    """The token service on the app and token-key connections, over the sync store (`hooks.oauth`)."""
    from cherry_sync.context import STORE_CONN_ID
    from cherry_sync.hooks.oauth import TokenService
    from cherry_sync.runtime import shared_pacer
    from cherry_sync.store import get_store

    return TokenService.from_connections(store or get_store(STORE_CONN_ID), pacer=pacer or shared_pacer())


def exchange_authorization_code(code: str, service: Any = None) -> dict[str, Any]:
    """Exchange the agency's authorization code for the company token pair, stored encrypted; ids only back.

    A refused code (used, expired, another app's) raises `OAuthGrantRevoked` whose message says what to do."""
    from cherry_sync.hooks.base import _mask

    _mask(code)
    agency = (service or token_service()).connect(code)
    log.info("agency token pair stored (%d approved locations in the install)", len(agency.approved_locations))
    return {"company_id": agency.company_id, "approved_locations": list(agency.approved_locations)}


# -- the cherry_onboard DAG's tasks ---------------------------------------------------------------


def dag_exchange_authorization_code(params: dict | None) -> dict[str, Any]:
    """The form's code (if any), masked the moment it is read, exchanged and stored; a refused code fails the
    task without retries (a repeat can only be refused again)."""
    from airflow.sdk.exceptions import AirflowFailException

    from cherry_sync.hooks.base import _mask

    code = ((params or {}).get("authorization_code") or "").strip()
    if not code:
        log.info("no authorization code in the form: nothing to exchange")
        return {"exchanged": False}
    _mask(code)
    try:
        outcome = exchange_authorization_code(code)
    except CherrySyncError as exc:
        if exc.disposition is Disposition.FAIL:  # a refused code, a broken key: a retry would change nothing
            raise AirflowFailException(exc.describe()) from None
        raise
    return {"exchanged": True, **outcome}


def dag_onboarding_report(params: dict | None) -> dict[str, Any]:
    report = onboarding_report(check_cherry_keys=bool((params or {}).get("check_cherry_keys", True)))
    log_report(report)
    return report.as_dict()


def dag_verdict(report: dict[str, Any]) -> None:
    """Fail (no retry: the same report would come back) when an enabled practice is not ready."""
    from airflow.sdk.exceptions import AirflowFailException

    if report["ok"]:
        log.info("every enabled practice is ready (%d)", len(report["ready"]))
        return
    parts = []
    if report["not_ready"]:
        parts.append(f"not ready: {', '.join(report['not_ready'])}")
    if report["invalid_entries"]:
        parts.append(f"invalid registry entries: {', '.join(report['invalid_entries'])}")
    raise AirflowFailException("; ".join(parts) + " (the onboarding_report task's log says what is missing)")


# -- command line -------------------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> int:
    """Print the onboarding report; exit 1 when an enabled practice is not ready, 2 for an unreadable registry."""
    parser = argparse.ArgumentParser(prog="python -m cherry_sync.onboarding", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", help="registry file (default: $CHERRY_SYNC_REGISTRY or include/practices.yml)")
    parser.add_argument("--no-cherry-check", action="store_true", help="do not ping the Cherry keys")
    parser.add_argument(
        "--exchange-code",
        action="store_true",
        help="first exchange an agency authorization code read from standard input (never put it on the command "
        "line) for the company token pair",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    from cherry_sync.registry import RegistryFileError, load_registry

    if args.exchange_code:
        code = _read_code()
        if not code:
            print("no authorization code on standard input", file=sys.stderr)
            return 2
        try:
            outcome = exchange_authorization_code(code)
        except CherrySyncError as exc:
            print(exc.describe(), file=sys.stderr)
            return 1
        print(f"agency token pair stored: company {outcome['company_id']}")
    try:
        registry = load_registry(args.registry)
    except RegistryFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    report = onboarding_report(registry, check_cherry_keys=not args.no_cherry_check)
    print(report.table())
    return 0 if report.ok else 1


def _read_code() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("authorization code: ").strip()
    return sys.stdin.readline().strip()


if __name__ == "__main__":
    sys.exit(main())
