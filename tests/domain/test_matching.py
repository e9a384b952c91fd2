"""Match keys and the two-patients-one-contact conflict check."""

from __future__ import annotations

from datetime import date

from cherry_sync.domain.desired_contact import DesiredContact
from cherry_sync.domain.matching import detect_conflicts, match_keys


def test_match_keys_normalise() -> None:
    keys = match_keys(
        DesiredContact(
            patient_id="pat_1",
            first_name="Zoë",
            last_name="O'Brien",
            email="Zoe.OBrien@example.com",
            phone="+14155550134",
            date_of_birth=date(1990, 5, 17),
        )
    )
    assert keys.email == "zoe.obrien@example.com"
    assert keys.phone == "+14155550134"
    assert keys.name_dob == ("zoe", "obrien", date(1990, 5, 17))
    assert "Zo" not in repr(keys) and "555" not in repr(keys)


def test_name_dob_key_needs_all_three_parts() -> None:
    assert match_keys(DesiredContact(patient_id="p", first_name="A", last_name="B")).name_dob is None
    assert match_keys(DesiredContact(patient_id="p", last_name="B", date_of_birth=date(1990, 1, 2))).name_dob is None


def test_detect_conflicts_flags_shared_contacts_only() -> None:
    assignments = {"pat_3": "ct_A", "pat_1": "ct_A", "pat_2": "ct_B", "pat_4": "ct_C", "pat_5": "ct_C", "pat_6": "ct_C"}
    assert detect_conflicts(assignments) == {"ct_A": ["pat_1", "pat_3"], "ct_C": ["pat_4", "pat_5", "pat_6"]}
    assert detect_conflicts({"pat_1": "ct_A", "pat_2": "ct_B"}) == {}
    assert detect_conflicts({}) == {}
