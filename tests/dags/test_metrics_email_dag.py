"""cherry_metrics_email run by Airflow (`airflow dags test`) against the Cherry sandbox and a real SMTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from cherry_sync.registry import load_registry
from cherry_sync.store import engine_from_url, store_from_engine
from tests.reports.helpers import expected_figures, load_store_from_cherry, text_figures

pytestmark = pytest.mark.airflow

DAG_ID = "cherry_metrics_email"


def test_monthly_run_emails_each_practice_once_and_skips_one_without_recipients(dag_env, smtp_server, tmp_path):
    env = dag_env
    entries = env.registry()
    for index, entry in enumerate(entries):
        # Cherry counts its metrics in its own zone for the practice; the registry agrees with it, as it should.
        entry["timezone"] = env.cherry.practices[index].timezone
    assert not entries[2].get("options", {}).get("report_recipients"), "harbor-dermatology has no recipients"
    env.write_registry(entries)
    registry = load_registry(env.registry_path)
    store = store_from_engine(engine_from_url(env.store_url))
    store.sync_practices(registry.practices)
    for index, practice in enumerate(registry.practices):
        load_store_from_cherry(store, env.cherry, index, practice.slug)
    reports = tmp_path / "reports"
    env.extra.update({**smtp_server.conn_env(), "CHERRY_SYNC_REPORT_DIR": str(reports)})

    out = env.run(DAG_ID)  # as scheduled: the window ends the day before the logical date, per practice time zone

    assert "report for" in out and "sent to 2 of 2 recipient(s)" in out  # the task logs are in the output...
    addresses = [a for p in registry.practices for a in p.options.report_recipients]
    assert addresses and not [a for a in addresses if a in out]  # ...and name no recipient

    sends = {row.practice_slug: row for row in store.list_report_sends()}
    assert set(sends) == {"glow-aesthetics", "lumen-medspa"}
    assert all(row.status == "sent" for row in sends.values())
    ledger = {r.practice_slug: r.status for r in store.list_runs(dag_id=DAG_ID) if r.task_id == "send_report"}
    assert ledger == {"glow-aesthetics": "success", "lumen-medspa": "success", "harbor-dermatology": "skipped"}

    received = {message.message["X-Cherry-Sync-Report"].split("/")[0]: message for message in smtp_server.messages}
    assert len(smtp_server.messages) == 2 and set(received) == set(sends)
    for index, practice in enumerate(registry.practices[:2]):
        row, message = sends[practice.slug], received[practice.slug]
        assert (row.window_end - row.window_start).days == 89
        assert sorted(message.rcpt_tos) == sorted(practice.options.report_recipients)
        assert message.message["Subject"].startswith(f"{practice.display_name}: your Cherry report for ")
        text = message.message.get_body(("plain",)).get_content()
        shown = text_figures(text)
        expected = expected_figures(
            env.cherry,
            store,
            index,
            practice.slug,
            row.window_start,
            row.window_end,
            practice.options.segments.balance_threshold,
        )
        for label in ("Applications started", "Approvals", "Payments completed", "Net volume", "Refunds"):
            assert shown[label][0] == expected[label], (practice.slug, label)
        stem = f"{practice.slug}_{row.window_end.isoformat()}"
        assert {p.name for p in reports.iterdir() if p.name.startswith(practice.slug)} == {
            f"{stem}.html",
            f"{stem}.txt",
            f"{stem}_chart.png",
        }
    assert not any(Path(p).name.startswith("harbor-dermatology") for p in reports.iterdir())

    # A re-run for the same window (chosen by hand this time) sends nothing more.
    glow = sends["glow-aesthetics"]
    env.run(DAG_ID, practices=["glow-aesthetics"], end_date=glow.window_end.isoformat())

    assert len(smtp_server.messages) == 2
    assert store.get_report_send("glow-aesthetics", glow.window_start, glow.window_end).attempts == 1
