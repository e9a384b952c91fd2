"""How tag changes are batched into bulk calls, and how a bulk answer is read (pure functions, no I/O)."""

from __future__ import annotations

import random

from cherry_sync.reasons import ReasonCode
from cherry_sync.smart_list.push import _OK, _UNKNOWN, _bulk_outcomes, plan_batches
from cherry_sync.store.smart_lists import ContactChange

TAGS = ("cherry-active", "cherry-balance-5k-plus", "cherry-inactive", "cherry-increase-eligible", "cherry-patient")


def _change(contact_id: str, wanted=(), confirmed=()) -> ContactChange:
    return ContactChange(contact_id, f"p-{contact_id}", frozenset(wanted), frozenset(confirmed), frozenset())


def _covers(batches, changes, tags_of) -> bool:
    sent = {(contact, tag) for tags, contacts in batches for contact in contacts for tag in tags}
    wanted = {(c.contact_id, tag) for c in changes for tag in tags_of(c)}
    return sent == wanted and all(len(contacts) <= 100 for _tags, contacts in batches)


def test_a_first_run_sends_identical_tag_sets_together():
    rng = random.Random(3)
    changes = [
        _change(
            f"c{i:05d}",
            ["cherry-patient", rng.choice(["cherry-active", "cherry-inactive"])]
            + rng.choice([[], ["cherry-balance-5k-plus"]]),
        )
        for i in range(5000)
    ]
    batches = plan_batches(changes, lambda c: c.to_add)
    assert _covers(batches, changes, lambda c: c.to_add)
    assert len(batches) <= 5000 / 100 + 4  # full batches, plus at most one partial batch per tag set


def test_a_few_moves_share_one_call_per_tag():
    rng = random.Random(4)
    changes = [
        _change(f"c{i}", rng.sample(TAGS, rng.randint(1, 4)), rng.sample(TAGS, rng.randint(0, 3))) for i in range(150)
    ]
    for tags_of in (lambda c: c.to_add, lambda c: c.to_remove):
        batches = plan_batches(changes, tags_of)
        assert _covers(batches, changes, tags_of)
        assert len(batches) <= 2 * len(TAGS)  # 150 contacts, up to 5 tags: per tag, at most 2 calls of 100
    assert plan_batches([_change("c1", ["a", "b"])], lambda c: c.to_add) == [(("a", "b"), ["c1"])]


def test_bulk_answers_are_read_per_contact():
    batch = ["c1", "c2", "c3", "c4"]
    assert _bulk_outcomes({"succeded": True, "errorCount": 0}, batch, "add") == dict.fromkeys(batch, _OK)
    body = {
        "succeded": False,
        "errorCount": 2,
        "responses": [
            {"contactId": "c1", "type": "success", "message": "Tags updated"},
            {"contactId": "c2", "type": "error", "message": "contact not found"},
            {"contactId": "c3", "type": "error", "message": "contact does not belong to location"},
        ],
    }
    added = _bulk_outcomes(body, batch, "add")
    assert added["c1"] is _OK and added["c4"] is _UNKNOWN
    assert added["c2"][0] == ReasonCode.CRM_CONTACT_MISSING and added["c3"][0] == ReasonCode.CRM_REJECTED
    removed = _bulk_outcomes(body, batch, "remove")
    assert removed["c2"] is _OK  # a tag cannot be on a contact that does not exist
    assert _bulk_outcomes({"succeded": False, "errorCount": 1}, batch, "add") == dict.fromkeys(batch, _UNKNOWN)
    assert _bulk_outcomes("not json", batch, "add") == dict.fromkeys(batch, _UNKNOWN)
