"""Send smart-list tag changes to the CRM with the bulk endpoints, one contact at a time only where needed.

Contacts that need the same tags added (or removed) go together, 100 per `POST /contacts/bulk/tags/update/...`
call (see `plan_batches`), so a first run costs about one call per 100 members and the few patients that moved
since the last run share one call per tag touched. Removals go first, then additions.

What can go wrong, and what happens:
- the CRM rejects a whole batch (4xx; e.g. one contact id it will not take): the batch is retried contact by
  contact (`POST`/`DELETE /contacts/{id}/tags`), so one bad contact does not block the other 99;
- the batch succeeds with per-item errors (`{succeded, errorCount, responses}`): the items that succeeded are
  recorded, the failed ones are not; items the answer does not account for are retried contact by contact;
- a contact the CRM does not know: removing a tag from it is done (the tag is not there); adding fails and the
  patient's `written_hash` is cleared so the next sync re-matches or re-creates the contact;
- anything else (5xx or timeouts the hook's retries could not get past, auth): the run stops; what was confirmed
  so far is recorded, and tags sent without an answer stay pending.
A change that failed stays in the diff and is sent again on the next run, until the CRM matches.

Bulk calls go one at a time, removals before additions. The per-contact calls of a fallback go through a
`WriteWindow` keyed on the contact: several contacts in flight at once (each call paced by the shared limiter),
one call per contact. Their outcomes come back to the calling thread, which records them in the store with the
rest of the batch; an error that stops the run keeps the calls not yet sent from going out, lets the ones in
flight finish, records what they confirmed, and is raised then.

Before an addition is sent its tags are recorded as pending; after the CRM answers they become confirmed (or
drop out of pending when it refused them). Only tags recorded here are ever removed by the product.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cherry_sync.hooks import errors
from cherry_sync.hooks.crm import BULK_TAG_BATCH, AesthetixCrmHook, trace_id_of
from cherry_sync.hooks.inflight import Job, WriteWindow
from cherry_sync.reasons import ReasonCode
from cherry_sync.safety import redact
from cherry_sync.store import SyncStore
from cherry_sync.store.smart_lists import ContactChange, ContactTags

log = logging.getLogger(__name__)

ADD = "add"
REMOVE = "remove"
_OK = None  # outcome of one contact in a call: None, or the reason code it failed with


@dataclass
class PushResult:
    """What one push did. Counts of (contact, tag) pairs and calls, reason codes, opaque ids: no patient data."""

    added: Counter = field(default_factory=Counter)  # tag -> contacts it was confirmed added to
    removed: Counter = field(default_factory=Counter)  # tag -> contacts it was confirmed removed from
    failed: Counter = field(default_factory=Counter)  # reason -> (contact, tag) pairs not applied
    bulk_calls: int = 0
    bulk_rejected: int = 0  # bulk calls the CRM refused whole (then retried contact by contact)
    single_calls: int = 0
    peak_in_flight: int = 0  # per-contact calls in flight at once, at most
    failed_patients: dict[str, str] = field(default_factory=dict)  # patient id -> reason code (+ message below)
    failure_messages: dict[str, str] = field(default_factory=dict)  # patient id -> redacted CRM message
    missing_contact_patients: set[str] = field(default_factory=set)
    succeeded_patients: set[str] = field(default_factory=set)
    # One per (contact, action) settled or left without an answer, for the outcome history:
    # (patient id, contact id, ADD or REMOVE, None or the reason code it failed with, the CRM's trace id).
    outcomes: list[tuple[str, str, str, str | None, str | None]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.bulk_calls + self.single_calls

    @property
    def pairs_added(self) -> int:
        return sum(self.added.values())

    @property
    def pairs_removed(self) -> int:
        return sum(self.removed.values())

    @property
    def pairs_failed(self) -> int:
        return sum(self.failed.values())


def plan_batches(
    changes: Iterable[ContactChange],
    tags_of: Callable[[ContactChange], frozenset[str]],
    batch_size: int = BULK_TAG_BATCH,
) -> list[tuple[tuple[str, ...], list[str]]]:
    """The bulk calls for one action: [(tags, contact ids)], few calls, in a stable order.

    Contacts needing the same tag set share calls, `batch_size` at a time. What is left over (groups smaller
    than a batch: typically the few contacts that moved since the last run, each needing a different mix) goes
    either per tag set or pooled per single tag (one call adds one tag to up to `batch_size` contacts, whatever
    else they need), whichever takes fewer calls. A first run is mostly full batches of identical sets; a later
    run's handful of moves costs at most one call per tag touched.
    """
    by_set: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for change in changes:
        tags = tags_of(change)
        if tags:
            by_set[tuple(sorted(tags))].append(change.contact_id)
    batches: list[tuple[tuple[str, ...], list[str]]] = []
    leftovers: dict[tuple[str, ...], list[str]] = {}
    for tags, contacts in sorted(by_set.items()):
        full = len(contacts) - len(contacts) % batch_size
        batches.extend((tags, contacts[i : i + batch_size]) for i in range(0, full, batch_size))
        if full < len(contacts):
            leftovers[tags] = contacts[full:]
    by_tag: dict[str, list[str]] = defaultdict(list)
    for tags, contacts in leftovers.items():
        for tag in tags:
            by_tag[tag].extend(contacts)
    per_tag_calls = sum(-(-len(contacts) // batch_size) for contacts in by_tag.values())
    if per_tag_calls < len(leftovers):
        for tag, contacts in sorted(by_tag.items()):
            contacts.sort()
            batches.extend(((tag,), contacts[i : i + batch_size]) for i in range(0, len(contacts), batch_size))
    else:
        batches.extend(leftovers.items())
    return batches


def planned_bulk_calls(changes: list[ContactChange], batch_size: int = BULK_TAG_BATCH) -> int:
    """Bulk calls a push of `changes` makes when the CRM accepts every batch."""
    return sum(
        len(plan_batches(changes, tags_of, batch_size)) for tags_of in (lambda c: c.to_remove, lambda c: c.to_add)
    )


class TagPusher:
    """Applies `ContactChange`s for one practice and records each confirmed step in the store."""

    def __init__(self, crm: AesthetixCrmHook, store: SyncStore, slug: str, *, batch_size: int = BULK_TAG_BATCH) -> None:
        if not 1 <= batch_size <= BULK_TAG_BATCH:
            raise ValueError(f"batch_size must be 1-{BULK_TAG_BATCH}")
        self.crm = crm
        self.store = store
        self.slug = slug
        self.batch_size = batch_size
        self._traces: dict[str, str | None] = {}  # contact id -> the CRM's trace id of its last tag call

    def push(self, changes: list[ContactChange]) -> PushResult:
        result = PushResult()
        state: dict[str, ContactTags] = {change.contact_id: change.applied for change in changes}
        for action, tags_of in ((REMOVE, lambda c: c.to_remove), (ADD, lambda c: c.to_add)):
            for tags, batch in plan_batches(changes, tags_of, self.batch_size):
                self._apply(action, set(tags), batch, state, result)
        result.succeeded_patients -= set(result.failed_patients)
        return result

    # -- one batch -------------------------------------------------------------------------------

    def _apply(
        self, action: str, tags: set[str], batch: list[str], state: dict[str, ContactTags], result: PushResult
    ) -> None:
        if action == ADD:
            # Recorded before sending: if the task dies before the answer is stored, the tags may be there.
            for contact_id in batch:
                current = state[contact_id]
                state[contact_id] = current._replace(pending=current.pending | tags)
            self.store.save_contact_tags(self.slug, (state[c] for c in batch))
        self._traces = {}
        outcomes, stop = self._send(action, batch, sorted(tags), result)
        for contact_id in batch:
            current = state[contact_id]
            failure = outcomes.get(contact_id, _UNKNOWN)
            trace = self._traces.get(contact_id)
            if failure is _UNKNOWN:
                if stop is not None:
                    reason = getattr(stop, "reason_code", None)
                    result.outcomes.append((current.patient_id, contact_id, action, reason, trace))
                continue  # not sent, or no answer (the run stops): additions stay pending, nothing else changes
            result.outcomes.append(
                (current.patient_id, contact_id, action, None if failure is _OK else failure[0], trace)
            )
            if failure is _OK:
                if action == ADD:
                    state[contact_id] = current._replace(
                        confirmed=current.confirmed | tags, pending=current.pending - tags
                    )
                    result.added.update(tags)
                else:
                    state[contact_id] = current._replace(
                        confirmed=current.confirmed - tags, pending=current.pending - tags
                    )
                    result.removed.update(tags)
                result.succeeded_patients.add(current.patient_id)
                continue
            reason, message = failure
            result.failed[reason] += len(tags)
            result.failed_patients[current.patient_id] = reason
            result.failure_messages[current.patient_id] = f"tag {action} refused by the CRM: {message}"[:500]
            if reason == ReasonCode.CRM_CONTACT_MISSING:
                result.missing_contact_patients.add(current.patient_id)
            # An addition that failed keeps its tags pending: an earlier attempt may have landed, and pending tags
            # that stop being wanted are removed later, so nothing the product put there is left behind.
        self.store.save_contact_tags(self.slug, (state[c] for c in batch))
        if stop is not None:
            raise stop

    def _send(
        self, action: str, batch: list[str], tags: list[str], result: PushResult
    ) -> tuple[dict, Exception | None]:
        """Outcome per contact (`_OK`, or (reason code, redacted message)); contacts left out were not settled.
        With it, the error that stops the run once these outcomes are recorded, if one came up."""
        try:
            body = self.crm.bulk_update_tags(action, batch, tags)
            self._traces.update(dict.fromkeys(batch, self.crm.last_trace_id))
        except (errors.ValidationError, errors.NotFoundError) as exc:
            result.bulk_calls += 1
            result.bulk_rejected += 1
            log.warning(
                "practice %s: bulk tag %s for %d contacts refused (%s); retrying them contact by contact",
                self.slug,
                action,
                len(batch),
                exc.reason_code,
            )
            return self._per_contact(action, batch, tags, result)
        result.bulk_calls += 1
        outcomes = _bulk_outcomes(body, batch, action)
        unknown = [contact_id for contact_id, outcome in outcomes.items() if outcome is _UNKNOWN]
        if unknown:
            log.warning(
                "practice %s: bulk tag %s answered without a result for %d of %d contacts; retrying them contact by contact",
                self.slug,
                action,
                len(unknown),
                len(batch),
            )
            singles, stop = self._per_contact(action, unknown, tags, result)
            for contact_id in unknown:
                outcomes[contact_id] = singles.get(contact_id, _UNKNOWN)
            outcomes = {c: o for c, o in outcomes.items() if o is not _UNKNOWN}
            return outcomes, stop
        return outcomes, None

    def _per_contact(
        self, action: str, contacts: list[str], tags: list[str], result: PushResult
    ) -> tuple[dict, Exception | None]:
        """One call per contact through a `WriteWindow` (key: the contact); outcomes sorted here, in the calling
        thread. An error that stops the run keeps the calls not sent yet from going out."""
        stopped = threading.Event()

        def call(contact_id: str) -> str | None:
            if stopped.is_set():
                raise _NotSent
            try:
                if action == ADD:
                    self.crm.add_tags(contact_id, tags)
                else:
                    self.crm.remove_tags(contact_id, tags)
            except (errors.NotFoundError, errors.ValidationError, errors.ForbiddenError):
                raise  # this contact's outcome; the others go on
            except Exception:
                stopped.set()
                raise
            return self.crm.last_trace_id  # read in the thread that sent the call

        jobs = [Job(contact_id, lambda contact_id=contact_id: call(contact_id)) for contact_id in contacts]
        with WriteWindow(self.crm) as window:
            ran = window.run(jobs)
        result.peak_in_flight = max(result.peak_in_flight, window.peak_in_flight)
        outcomes: dict = {}
        stop: Exception | None = None
        for contact_id, outcome in zip(contacts, ran, strict=True):
            exc = outcome.error
            if isinstance(exc, _NotSent):
                continue
            result.single_calls += 1
            self._traces[contact_id] = outcome.result if exc is None else trace_id_of(exc)
            if exc is None:
                outcomes[contact_id] = _OK
            elif isinstance(exc, errors.NotFoundError):
                outcomes[contact_id] = _OK if action == REMOVE else (ReasonCode.CRM_CONTACT_MISSING, exc.api_message)
            elif isinstance(exc, (errors.ValidationError, errors.ForbiddenError)):
                # 403 here is one contact of another location (a location-wide 403 fails the bulk call first).
                outcomes[contact_id] = (ReasonCode.CRM_REJECTED, exc.api_message)
            else:
                stop = stop or exc  # type: ignore[assignment]  # no outcome: an addition stays pending
        return outcomes, stop


class _NotSent(Exception):
    """A per-contact call left out because an earlier one hit an error that stops the run."""


_UNKNOWN = object()


def _bulk_outcomes(body: object, batch: list[str], action: str) -> dict:
    """Per contact of a bulk answer: `_OK`, (reason, message), or `_UNKNOWN` when the answer does not say."""
    if not isinstance(body, dict):
        return dict.fromkeys(batch, _UNKNOWN)
    succeeded = body.get("succeded", body.get("succeeded"))
    if succeeded is True and body.get("errorCount", 0) == 0:
        return dict.fromkeys(batch, _OK)
    items = body.get("responses")
    by_contact = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("contactId"), str):
                by_contact[item["contactId"]] = item
    outcomes: dict = {}
    for contact_id in batch:
        item = by_contact.get(contact_id)
        kind = str(item.get("type", "")).lower() if item else ""
        if kind == "success":
            outcomes[contact_id] = _OK
        elif kind == "error":
            message = redact(str(item.get("message") or ""))[:300]
            if "not found" in message.lower():
                outcomes[contact_id] = _OK if action == REMOVE else (ReasonCode.CRM_CONTACT_MISSING, message)
            else:
                outcomes[contact_id] = (ReasonCode.CRM_REJECTED, message)
        else:
            outcomes[contact_id] = _UNKNOWN
    return outcomes
