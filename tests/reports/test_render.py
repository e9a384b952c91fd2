"""Rendering: the same figures in HTML and text, CSS inlined, email-safe layout, unavailable and empty cases."""

from __future__ import annotations

import re
from decimal import Decimal

from cherry_sync.reports.figures import SourceState
from cherry_sync.reports.render import render_report, write_files
from tests.reports.samples import make_report, zero_report


def test_html_has_inlined_css_a_600px_table_layout_and_the_chart_by_cid():
    rendered = render_report(make_report(), recipients_count=2)
    html = rendered.html

    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert 'role="presentation"' in html and "max-width: 600px" in html
    # The layout is tables from the top (after the hidden preheader): what every mail client lays out alike.
    assert re.search(r"<body[^>]*>\s*<div[^>]*display:none[^>]*>[^<]*</div>\s*<table", html)
    # Styles live on the elements (mail clients drop <style>); only the phone @media rules stay in the head.
    assert re.search(r'<td[^>]*class="row-label"[^>]*style="[^"]*font-size: 14px', html)
    head_styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert head_styles and all(css.strip().startswith("@media") and "#ececf1" not in css for css in head_styles)
    assert f'src="cid:{rendered.chart_cid}"' in html
    assert rendered.chart_filename in rendered.html_for_file and "cid:" not in rendered.html_for_file
    assert rendered.chart_png.startswith(b"\x89PNG")


def test_text_and_html_show_the_same_figures_and_changes_in_words():
    rendered = render_report(make_report(), recipients_count=1)

    for shown in ("$1,900.10", "$3,000.30", "75.0%", "▲ up 25.0 pts", "▲ up 340%", "$9,999.99"):
        assert shown in rendered.text and shown in rendered.html, shown
    assert "Net volume:" in rendered.text.split("APPLICATIONS")[0]  # headline figures come first
    assert "(was $700.00)" in rendered.text
    assert rendered.subject == "Glow Aesthetics: your Cherry report for Jan 1 – Mar 31, 2026 ($1,900.10 net volume)"
    assert "Net volume: $1,900.10" in rendered.preheader
    assert "Patients with $5,000+ available" in rendered.text
    assert max(len(line) for line in rendered.text.splitlines()) <= 100


def test_unavailable_sources_are_said_plainly_and_never_shown_as_zero():
    report = make_report(
        metrics=None,
        previous_metrics=None,
        metrics_state=SourceState(False, "not_found"),
        payment_rows=None,
        patient_rows=None,
        store_state=SourceState(False, "not_synced"),
    )

    rendered = render_report(report, recipients_count=1)

    assert "APPLICATION FIGURES UNAVAILABLE" in rendered.text and "(not_found)" in rendered.text
    assert "PAYMENT AND PATIENT FIGURES UNAVAILABLE" in rendered.text
    assert "$0.00" not in rendered.text and "$0.00" not in rendered.html
    assert rendered.text.count("unavailable") >= 18
    assert "Weekly payment volume" not in rendered.html  # no chart without payments data
    assert rendered.subject.endswith("Jan 1 – Mar 31, 2026")


def test_a_practice_with_zero_activity_renders_cleanly(tmp_path):
    rendered = render_report(zero_report(), recipients_count=1)

    assert "A QUIET 90 DAYS" in rendered.text
    assert "n/a (no payments)" in rendered.text and "n/a (none completed)" in rendered.text
    assert "no payments in these 90 days" in rendered.chart_alt
    for body in (rendered.text, rendered.html):
        assert not re.search(r"\bNone\b|\bnan\b|\bNaN\b|Decimal\(|\bNaT\b|inf\b", body)
    paths = write_files(rendered, tmp_path / "out", "glow-aesthetics_2026-03-31")
    assert [p.name for p in paths] == [
        "glow-aesthetics_2026-03-31.html",
        "glow-aesthetics_2026-03-31.txt",
        "glow-aesthetics_2026-03-31_chart.png",
    ]


def test_a_negative_net_volume_is_shown_with_a_minus_sign():
    from tests.reports.samples import pay

    report = make_report(
        payment_rows=[pay("REFUNDED", "500.00", "2025-12-01T12:00:00Z", "2026-02-01T12:00:00Z", refund="500.00")]
    )

    assert report.figures["net_volume"].value == Decimal("-500.00")
    assert "\u2212$500.00" in render_report(report, recipients_count=1).text


def test_only_last_periods_cherry_figures_missing_shows_them_without_comparison():
    report = make_report(previous_metrics=None, previous_metrics_state=SourceState(False, "server_error"))

    rendered = render_report(report, recipients_count=1)

    assert "SOME CHANGES NOT SHOWN" in rendered.text
    assert "Approvals:" in rendered.text and "no comparison" in rendered.text.split("PAYMENTS")[0]
    assert "(was $700.00)" in rendered.text  # payments still compare (the store has both periods)
