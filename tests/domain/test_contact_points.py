"""Phone, email and name normalisation."""

from __future__ import annotations

import pytest

from cherry_sync.domain.contact_points import (
    clean_name,
    email_match_key,
    name_match_key,
    normalise_email,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("(415) 555-0134", "+14155550134", id="us-parentheses"),
        pytest.param("415.555.0134", "+14155550134", id="us-dots"),
        pytest.param("+1 415 555 0134", "+14155550134", id="e164-spaced"),
        pytest.param("4155550134", "+14155550134", id="ten-digits"),
        pytest.param("1-415-555-0134", "+14155550134", id="trunk-prefix"),
        pytest.param("+14155550134", "+14155550134", id="already-e164"),
        pytest.param("  (212) 555-0199  ", "+12125550199", id="padded-fictional-555-01xx"),
        pytest.param("415-555-0134 ext. 12", "+14155550134", id="extension-dropped"),
        pytest.param("4155550134x12", "+14155550134", id="x-extension-dropped"),
        pytest.param("+44 20 7946 0958", "+442079460958", id="uk-with-country-code"),
        pytest.param("555-0134", None, id="seven-digits-possible-not-valid"),
        pytest.param("(000) 555-0134", None, id="invalid-area-code"),
        pytest.param("415 555 01345", None, id="too-long"),
        pytest.param("123", None, id="too-short"),
        pytest.param("junk", None, id="junk"),
        pytest.param("1-800-FLOWERS", None, id="vanity-refused"),
        pytest.param("call me 4155550134", None, id="prose-refused"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param("4" * 1000, None, id="oversize"),
        pytest.param(None, None, id="null"),
        pytest.param(4155550134, None, id="not-a-string"),
    ],
)
def test_normalise_phone(raw: object, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


def test_phone_region_applies_to_national_numbers() -> None:
    assert normalise_phone("020 7946 0958", region="GB") == "+442079460958"
    assert normalise_phone("020 7946 0958") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(" Jane.Doe@Example.COM ", "Jane.Doe@example.com", id="trim-and-lowercase-domain"),
        pytest.param("jane@example.org", "jane@example.org", id="plain"),
        pytest.param("bad@", None, id="no-domain"),
        pytest.param("jane doe@example.com", None, id="space-in-local"),
        pytest.param("jane@localhost", None, id="no-dot-domain"),
        pytest.param("jane@example.test", None, id="special-use-domain"),
        pytest.param("jane..doe@example.com", None, id="double-dot"),
        pytest.param("a" * 300 + "@example.com", None, id="oversize"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
    ],
)
def test_normalise_email(raw: object, expected: str | None) -> None:
    assert normalise_email(raw) == expected


def test_email_match_key_ignores_case() -> None:
    assert email_match_key("Jane.Doe@example.com") == email_match_key("jane.doe@EXAMPLE.com")
    assert email_match_key("") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("  Jane  ", "Jane", id="trim"),
        pytest.param("Mary \t\n Ann", "Mary Ann", id="collapse-whitespace"),
        pytest.param("Zo\u00eb", "Zo\u00eb", id="accent-kept"),
        pytest.param("Zoe\u0308", "Zo\u00eb", id="nfc-normalised"),
        pytest.param("Ja\u200bne\x00", "Jane", id="invisible-characters-dropped"),
        pytest.param("   ", None, id="blank"),
        pytest.param(None, None, id="null"),
    ],
)
def test_clean_name(raw: object, expected: str | None) -> None:
    assert clean_name(raw) == expected


def test_name_match_key_is_loose_about_case_accents_and_punctuation() -> None:
    assert name_match_key("O'Brien") == name_match_key("obrien") == "obrien"
    assert name_match_key("Zoë") == name_match_key("ZOE")
    assert name_match_key("Mary  Ann") == "mary ann"
