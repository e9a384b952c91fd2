"""`make demo`: the product's DAGs end to end on the embedded default, with a readable summary.

Sandboxes on loopback (fresh each run), Airflow's metadata DB and the sync store on SQLite under `.demo/`,
connections as AIRFLOW_CONN_* variables. Each step runs a real DAG with `airflow dags test`, then the demo
reads the sync store's run ledger and the CRM sandbox's request counters to say what happened.
The CRM sandbox's burst window is time-scaled (100 requests per 1 s instead of per 10 s) so the demo is quick.

`--standalone` (`make airflow`) instead starts `airflow standalone` on the same environment for the UI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from sandbox.common.stats import crm_writes  # noqa: E402
from scripts.local_env import (  # noqa: E402
    airflow,
    airflow_env,
    connection_env,
    free_port,
    install_marketplace_app,
    migrate_metadata,
    registry_practices,
    registry_with_oauth,
    start_sandboxes,
)

DEMO_DIR = REPO / ".demo"
CRM_WINDOW = 1.0  # seconds: time-scaled burst window, 100 requests per window as in production
# The demo runs both CRM auth modes: this practice through the marketplace app (OAuth), the others with a PIT.
OAUTH_PRACTICE = "harbor-dermatology"
DEMO_REGISTRY = DEMO_DIR / "practices.yml"


def _step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


class LocalMailbox:
    """A real SMTP server on loopback (aiosmtpd) that files each message it receives as an .eml file."""

    def __init__(self, folder: Path) -> None:
        from aiosmtpd.controller import Controller

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                name = f"{time.strftime('%Y%m%d-%H%M%S')}-{len(list(mailbox.folder.glob('*.eml'))) + 1}.eml"
                (mailbox.folder / name).write_bytes(envelope.original_content)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def conn_env(self) -> dict[str, str]:
        conn = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "extra": {
                "from_email": "Aesthetix Reports <reports@aesthetix.example>",
                "disable_ssl": True,
                "disable_tls": True,
            },
        }
        return {"AIRFLOW_CONN_CHERRY_SYNC_SMTP": json.dumps(conn)}

    def stop(self) -> None:
        self.controller.stop()


class Demo:
    def __init__(self, patients: int) -> None:
        self.patients = patients
        self.home = DEMO_DIR / "airflow"
        self.store_path = DEMO_DIR / "cherry_sync_store.db"

    def run(self) -> int:
        DEMO_DIR.mkdir(exist_ok=True)
        # A fresh CRM sandbox each run, so the store starts fresh too (its contact ids point into the CRM).
        for stale in DEMO_DIR.glob("cherry_sync_store*"):
            stale.unlink()
        _step("Starting the Cherry and CRM sandboxes on loopback")
        self.sandboxes = start_sandboxes(DEMO_DIR, patients=self.patients, crm_burst=100, crm_window=CRM_WINDOW)
        try:
            print(f"  Cherry: {self.sandboxes.cherry_url}   CRM: {self.sandboxes.crm_url}")
            # Count the CRM's busiest window over the same (time-scaled) span as its burst limit.
            requests.post(
                f"{self.sandboxes.crm_url}/_sandbox/stats/reset", params={"window_seconds": CRM_WINDOW}, timeout=10
            )
            self.mailbox = LocalMailbox(DEMO_DIR / "mailbox")
            registry_with_oauth(self.sandboxes, {OAUTH_PRACTICE}, DEMO_REGISTRY)
            self.env = airflow_env(
                self.home,
                store_url=f"sqlite:///{self.store_path}",
                extra={
                    **connection_env(self.sandboxes, DEMO_REGISTRY, crm_window=CRM_WINDOW),
                    "CHERRY_SYNC_REGISTRY": str(DEMO_REGISTRY),
                    **self.mailbox.conn_env(),
                    "CHERRY_SYNC_REPORT_DIR": str(DEMO_DIR / "reports"),
                    "CHERRY_SYNC_EXPORT_DIR": str(DEMO_DIR / "exports"),
                },
            )
            _step("Preparing Airflow's metadata database (SQLite)")
            migrate_metadata(self.env)
            self.onboard()
            self.dag("cherry_backfill", "Backfill, dry run (plan only, zero CRM writes)", dry_run=True)
            self.dag("cherry_backfill", "Backfill: every active Cherry patient into the CRM")
            _step(
                "Cherry time moves on: new patients, refreshed and closed accounts, payments, refunds, "
                "duplicate deliveries"
            )
            advanced = self.advance()
            print(f"  {advanced} new Cherry events")
            self.dag("cherry_refresh", "Refresh: apply Cherry's new events")
            self.dag("cherry_backfill", "Backfill again with no source change (expect zero CRM writes)")
            self.dag("cherry_smart_list", "Smart list: segment tags pushed as additions and removals only")
            self.dag("cherry_media_import", "Media import: Cherry marketing assets into Media > Cherry/<category>")
            self.dag("cherry_metrics_email", "Monthly metrics email: 90-day report per practice, sent over SMTP")
            print(
                f"  reports to open: {(DEMO_DIR / 'reports').relative_to(REPO)}/*.html   "
                f"mail received: {(DEMO_DIR / 'mailbox').relative_to(REPO)}/*.eml"
            )
            self.final_summary()
        finally:
            self.sandboxes.stop()
            if getattr(self, "mailbox", None):
                self.mailbox.stop()
        return 0

    def onboard(self) -> None:
        """The agency installs the marketplace app on the OAuth practice's location; `cherry_onboard` exchanges the
        authorization code for the agency's tokens (stored encrypted) and checks every practice."""
        oauth = [e for e in registry_practices(DEMO_REGISTRY) if e.get("crm_auth") == "oauth"]
        code = install_marketplace_app(self.sandboxes, [e["crm_location_id"] for e in oauth])
        print(f"  marketplace app installed on {', '.join(e['slug'] for e in oauth)}'s location (agency consent)")
        self.dag(
            "cherry_onboard",
            "Onboarding: exchange the authorization code, then check every practice (OAuth and PIT)",
            authorization_code=code,
        )
        # The report's table, as the task logged it (slugs, location ids and states only).
        log = max(DEMO_DIR.glob("cherry_onboard-*.log"), key=lambda p: p.stat().st_mtime)
        for line in log.read_text().splitlines():
            if "[cherry_sync.onboarding]" in line and "] " in line:
                print("  " + line.split("] ", 1)[1].rsplit(" [cherry_sync.onboarding]", 1)[0])

    def advance(self) -> int:
        body = {
            "minutes": 120,
            "new_patients": 4,
            "refreshed": 8,
            "payments": 5,
            "refunds": 1,
            "cancellations": 1,
            "deactivations": 2,
            "duplicate_share": 0.2,
            "out_of_order_share": 0.1,
        }
        result = requests.post(f"{self.sandboxes.cherry_url}/_sandbox/advance", json=body, timeout=30).json()
        return sum(p.get("events", 0) for p in result.get("practices", {}).values())

    def crm_writes(self) -> int:
        stats = requests.get(f"{self.sandboxes.crm_url}/_sandbox/stats", timeout=10).json()
        return crm_writes(stats["endpoints"])

    def dag(self, dag_id: str, title: str, **conf) -> None:
        _step(title)
        writes_before = self.crm_writes()
        started = time.monotonic()
        result = airflow(self.env, "dags", "test", dag_id, "-c", json.dumps(conf), check=False)
        log = DEMO_DIR / f"{dag_id}-{int(time.time())}.log"
        log.write_text(result.stdout or "")
        state = "success" if "state=success" in (result.stdout or "") and result.returncode == 0 else "FAILED"
        print(f"  {dag_id}: {state} in {time.monotonic() - started:.0f}s  (log: {log.relative_to(REPO)})")
        self.print_ledger(dag_id)
        print(f"  CRM writes during this step: {self.crm_writes() - writes_before}")
        if state != "success":
            raise SystemExit(f"{dag_id} failed; see {log}")

    def store(self):
        from cherry_sync.store import engine_from_url, store_from_engine

        return store_from_engine(engine_from_url(f"sqlite:///{self.store_path}"))

    def print_ledger(self, dag_id: str) -> None:
        runs = self.store().list_runs(dag_id=dag_id, limit=200)
        if not runs:
            return
        latest = max(r.started_at for r in runs)
        run_id = next(r.run_id for r in runs if r.started_at == latest)
        rows = [r for r in runs if r.run_id == run_id and not (r.task_id or "").endswith("provision_custom_fields")]
        print(
            f"  {'practice':22} {'status':>8} {'read':>5} {'created':>8} {'updated':>8} {'unchanged':>10} {'rejected':>9} {'shared pt':>10} {'API calls':>10}"
        )
        for r in sorted(rows, key=lambda r: r.practice_slug):
            c = r.counts
            # Patients synced without an e-mail or phone a relative's contact holds (warning, not rejection).
            shared = (r.details or {}).get("patients", {}).get("warnings_by_reason", {}).get("shared_contact_point", 0)
            print(
                f"  {r.practice_slug:22} {r.status:>8} {c.read:>5} {c.created:>8} {c.updated:>8} {c.unchanged:>10} {c.rejected:>9} {shared:>10} {c.api_calls:>10}"
            )
        cleared = sum((r.details.get("patients") or {}).get("values_cleared", 0) for r in rows)
        if cleared:
            print(f"  Cherry values cleared in the CRM (Cherry no longer has them): {cleared}")

    def final_summary(self) -> None:
        _step("Where things stand")
        store = self.store()
        state = requests.get(f"{self.sandboxes.crm_url}/_sandbox/locations", timeout=10).json()
        locations = state if isinstance(state, list) else state.get("locations", [])
        for loc in locations:
            counts = requests.get(
                f"{self.sandboxes.crm_url}/_sandbox/state/{loc['id']}", params={"lists": "false"}, timeout=10
            ).json()["counts"]
            print(
                f"  CRM location {loc['id']}: {counts['contacts']} contacts, {counts['customFields']} custom fields, "
                f"{counts['opportunities']} opportunities"
            )
        self.audit(store)
        rejects = store.rejection_counts()
        print(f"  Rejected records kept with their reason: {dict(sorted(rejects.items())) or 'none'}")
        warnings = store.warning_counts()
        print(
            "  Synced with a warning (a shared e-mail or phone left off the contact): "
            f"{dict(sorted(warnings.items())) or 'none'}"
        )
        oauth = requests.get(f"{self.sandboxes.crm_url}/_sandbox/oauth/stats", timeout=10).json()
        modes = ", ".join(f"{e['slug']} {e.get('crm_auth', 'pit')}" for e in registry_practices(DEMO_REGISTRY))
        print(
            f"  CRM auth: {modes}; OAuth: {sum(oauth['token_grants'].values())} agency token grant(s), "
            f"{oauth['location_tokens']} location token(s) minted, {oauth['invalid_grant']} invalid_grant"
        )
        stats = requests.get(f"{self.sandboxes.crm_url}/_sandbox/stats", timeout=10).json()
        worst = max((v["max_in_window"] for v in stats["by_key"].values()), default=0)
        print(
            f"  CRM requests: {stats['total']} in all, 429s: {stats['status_codes'].get('429', 0)}, "
            f"busiest {stats['window_seconds']:g} s window per location: {worst} (limit 100)"
        )
        print("  Open the store yourself: sqlite3 .demo/cherry_sync_store.db 'select * from run_ledger'")

    def cherry_rows(self, path: str, api_key: str) -> list[dict]:
        """Every row of a Cherry list endpoint, as the practice's API key sees it."""
        rows, cursor = [], None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            body = requests.get(
                f"{self.sandboxes.cherry_url}{path}",
                params=params,
                timeout=30,
                headers={"Authorization": f"Bearer {api_key}"},
            ).json()
            rows += body["data"]
            cursor = body.get("next_cursor")
            if not body.get("has_more"):
                return rows

    def audit(self, store) -> None:
        """Every contact's Cherry fields against Cherry's API, by the written rules (sandbox.audit)."""
        from sandbox.audit import audit

        wrong = stale = checked = 0
        cherry_practices = self.sandboxes.info["cherry"]["practices"]
        locations = self.sandboxes.info["crm"]["locations"]
        for index, entry in enumerate(registry_practices(DEMO_REGISTRY)[: len(locations)]):
            key = cherry_practices[index]["api_key"]
            state = requests.get(
                f"{self.sandboxes.crm_url}/_sandbox/state/{locations[index]['id']}",
                params={"lists": "true"},
                timeout=30,
            ).json()
            result = audit(
                patients=self.cherry_rows("/v1/patients", key),
                payments=self.cherry_rows("/v1/payments", key),
                contacts=state["contacts"],
                custom_fields=state["customFields"],
                contact_of={
                    s.patient_id: s.crm_contact_id for s in store.iter_patient_states(entry["slug"]) if s.crm_contact_id
                },
                zone=entry["timezone"],
            )
            wrong, stale, checked = wrong + len(result.wrong), stale + len(result.stale), checked + result.checked
        print(
            f"  Cherry fields audited against Cherry's API on {checked} contacts: {wrong} disagree "
            f"({stale} showing a value Cherry no longer has)"
        )


def standalone(patients: int) -> int:
    """`make airflow`: airflow standalone on the embedded default, with the sandboxes and demo practices."""
    DEMO_DIR.mkdir(exist_ok=True)
    home = DEMO_DIR / "airflow"
    sandboxes = start_sandboxes(DEMO_DIR, patients=patients, crm_burst=100, crm_window=CRM_WINDOW)
    port = os.environ.get("AIRFLOW_PORT", "8080")
    password_file = home / "simple_auth_manager_passwords.json"
    home.mkdir(parents=True, exist_ok=True)
    password_file.write_text(json.dumps({"admin": "admin"}))
    registry_with_oauth(sandboxes, {OAUTH_PRACTICE}, DEMO_REGISTRY)
    env = airflow_env(
        home,
        store_url=f"sqlite:///{DEMO_DIR / 'cherry_sync_store.db'}",
        extra={
            **connection_env(sandboxes, DEMO_REGISTRY, crm_window=CRM_WINDOW),
            "CHERRY_SYNC_REGISTRY": str(DEMO_REGISTRY),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "AIRFLOW__API__PORT": port,
            "AIRFLOW__API__HOST": "127.0.0.1",
            # Tasks report to the api-server's execution API: it must follow AIRFLOW_PORT.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        },
    )
    # The metadata DB and the product's pools (the scheduler never schedules a task whose pool is missing).
    migrate_metadata(env)
    print(f"Sandboxes: Cherry {sandboxes.cherry_url}  CRM {sandboxes.crm_url}")
    oauth = [e for e in registry_practices(DEMO_REGISTRY) if e.get("crm_auth") == "oauth"]
    code = install_marketplace_app(sandboxes, [e["crm_location_id"] for e in oauth])
    print(
        f"{', '.join(e['slug'] for e in oauth)} syncs through the marketplace app (OAuth): trigger cherry_onboard "
        f"first with this single-use authorization code (valid 10 minutes): {code}"
    )
    print(
        "Airflow UI: http://127.0.0.1:"
        + env["AIRFLOW__API__PORT"]
        + "   login: admin / admin   (Ctrl-C stops everything)"
    )
    # SIGTERM (a supervisor, `timeout`) must stop the children too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    process = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"], env=env, cwd=REPO)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        sandboxes.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=150, help="Cherry patients per demo practice")
    parser.add_argument("--standalone", action="store_true", help="start airflow standalone for the UI instead")
    args = parser.parse_args(argv)
    if args.standalone:
        return standalone(args.patients)
    return Demo(args.patients).run()


if __name__ == "__main__":
    sys.exit(main())
