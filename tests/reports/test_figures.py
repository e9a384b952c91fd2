"""Figures from synthetic store rows and metrics bodies: exact money, changes, missing sources, weekly buckets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cherry_sync.domain.cherry_records import parse_patient
from cherry_sync.domain.errors import Entity, RecordRejected
from cherry_sync.reasons import ReasonCode
from cherry_sync.reports.figures import MalformedMetrics, SourceState, parse_metrics
from tests.domain import samples as domain_samples
from tests.reports.samples import METRICS, WINDOW, make_report, pay, zero_report


def _values(report) -> dict:
    return {key: f.value for key, f in report.figures.items()}


def test_payment_figures_are_exact_and_respect_local_day_boundaries():
    values = _values(make_report())

    assert values["payments_completed"] == 3
    assert values["payment_volume"] == Decimal("3000.30")
    assert (values["refunds"], values["refund_amount"]) == (2, Decimal("1100.20"))
    assert (values["cancellations"], values["cancelled_amount"]) == (1, Decimal("555.55"))
    assert values["net_volume"] == Decimal("1900.10")
    assert values["average_ticket"] == Decimal("1000.10")
    for key in ("payment_volume", "refund_amount", "net_volume", "average_ticket", "available_balance"):
        assert type(values[key]) is Decimal, key


def test_previous_window_is_computed_from_the_same_rows():
    figures = make_report().figures

    # The payment made on Nov 1 counts as made then, though refunded in full later (Dec 1): a refund lowers the
    # net volume of the window it happens in.
    assert figures["payments_completed"].previous == 2
    assert figures["payment_volume"].previous == Decimal("950.00")
    assert figures["refund_amount"].previous == Decimal("250.00")
    assert figures["net_volume"].previous == Decimal("700.00")


def test_patient_figures_are_point_in_time_and_count_active_accounts_only():
    figures = make_report().figures

    assert figures["active_patients"].value == 3
    assert figures["available_balance"].value == Decimal("9999.99")
    assert figures["patients_over_threshold"].value == 1  # at the threshold counts; the expired 9,000 does not
    assert figures["increase_eligible"].value == 1
    assert all(figures[k].change() is None for k in ("active_patients", "available_balance"))


def test_changes_read_as_words_with_the_right_tone():
    figures = make_report().figures

    assert figures["approval_rate"].change().text == "up 25.0 pts"
    assert figures["approvals"].change().text == "up 50%"
    assert figures["approvals"].change().tone == "good"
    refunds = figures["refund_amount"].change()
    assert (refunds.arrow, refunds.text, refunds.tone) == (
        "▲",
        "up 340%",
        "bad",
    )  # 250.00 -> 1,100.20  # more refunds is worse
    assert figures["applications_started"].change().text == "no change"
    assert figures["promo_share"].change().tone == "neutral"


def test_a_figure_new_this_period_has_no_percentage():
    report = make_report(payment_rows=[pay("COMPLETED", "10.00", "2026-02-01T12:00:00Z")])

    change = report.figures["payment_volume"].change()
    assert (change.text, change.tone) == ("up from 0", "good")


def test_missing_metrics_are_unavailable_and_store_figures_remain():
    report = make_report(metrics=None, previous_metrics=None, metrics_state=SourceState(False, "server_error"))

    for key in ("applications_started", "approval_rate", "approved_amount", "promo_share"):
        assert not report.figures[key].available and report.figures[key].value is None
    assert report.figures["payments_completed"].value == 3
    assert report.figures["active_patients"].value == 3


def test_a_store_never_synced_invents_no_zeros():
    report = make_report(payment_rows=None, patient_rows=None, store_state=SourceState(False, "not_synced"))

    for key in ("payments_completed", "net_volume", "active_patients", "available_balance"):
        assert not report.figures[key].available and report.figures[key].value is None
    assert report.weeks == []
    assert report.figures["approvals"].value == 12


def test_no_activity_gives_zeros_and_not_applicable_averages():
    report = zero_report()

    values = _values(report)
    assert values["payments_completed"] == 0 and values["net_volume"] == Decimal("0.00")
    assert values["average_ticket"] is None and values["approval_rate"] is None
    assert values["active_patients"] == 0 and values["available_balance"] == Decimal("0.00")
    assert not report.has_activity()
    assert [w.payments for w in report.weeks] == [0] * 13


def test_weeks_end_on_the_last_day_and_add_up_to_the_window_volume():
    report = make_report()

    weeks = report.weeks
    assert len(weeks) == 13 and weeks[-1].end == WINDOW.end and weeks[0].start == WINDOW.start
    assert (weeks[0].end - weeks[0].start).days == 5  # 90 = 12 x 7 + 6
    assert all((w.end - w.start).days == 6 for w in weeks[1:])
    assert sum(w.payments for w in weeks) == 3
    assert sum((w.volume for w in weeks), Decimal(0)) == report.figures["payment_volume"].value
    assert weeks[-1].payments == 1 and weeks[0].payments == 1


def test_figures_json_keeps_exact_text():
    data = make_report().figures_json()

    assert data["net_volume"] == {"value": "1900.10", "previous": "700.00"}
    assert data["active_patients"] == {"value": "3", "previous": None}


@pytest.mark.parametrize(
    "body",
    [
        None,
        {**METRICS, "approvals": -1},
        {**METRICS, "volume": 12.5},
        {**METRICS, "approved_amount": "lots"},
        {k: v for k, v in METRICS.items() if k != "applications_started"},
        {**METRICS, "approvals": True},
    ],
)
def test_metrics_bodies_that_break_the_contract_are_refused(body):
    with pytest.raises(MalformedMetrics):
        parse_metrics(body)


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        pytest.param({"volume": "3000.305"}, ReasonCode.INVALID_MONEY, "volume", id="money-3-places"),
        pytest.param({"approved_amount": "-1.00"}, ReasonCode.INVALID_MONEY, "approved_amount", id="money-negative"),
        pytest.param({"refund_amount": "1e3"}, ReasonCode.INVALID_MONEY, "refund_amount", id="money-exponent"),
        pytest.param({"approvals": "12"}, ReasonCode.INVALID_NUMBER, "approvals", id="count-as-text"),
        pytest.param({"approval_rate": "1.2500"}, ReasonCode.INVALID_NUMBER, "approval_rate", id="ratio-above-1"),
        pytest.param({"promo_share": "0.33333"}, ReasonCode.INVALID_NUMBER, "promo_share", id="ratio-5-places"),
        pytest.param({"volume": None}, ReasonCode.MISSING_FIELD, "volume", id="money-null"),
    ],
)
def test_metrics_rejections_name_the_rule_and_field(overrides, reason, field):
    with pytest.raises(MalformedMetrics) as caught:
        parse_metrics({**METRICS, **overrides})

    assert (caught.value.entity, caught.value.reason_code, caught.value.field) == (Entity.METRICS, reason, field)


def test_a_metrics_amount_breaks_the_same_money_rule_as_a_patient_balance():
    with pytest.raises(MalformedMetrics) as metrics:
        parse_metrics({**METRICS, "approved_amount": "1.005"})
    with pytest.raises(RecordRejected) as patient:
        parse_patient(domain_samples.patient(balance_available="1.005"))

    assert metrics.value.reason_code is patient.value.reason_code is ReasonCode.INVALID_MONEY
    assert metrics.value.message == patient.value.message


def test_metrics_read_exactly_and_ratios_may_be_null():
    parsed = parse_metrics({**METRICS, "approval_rate": None, "unknown_future_key": 1})

    assert parsed["approved_amount"] == Decimal("36000.00") and type(parsed["volume"]) is Decimal
    assert parsed["promo_share"] == Decimal("0.3333") and parsed["approval_rate"] is None
    assert parsed["approvals"] == 12 and "unknown_future_key" not in parsed
