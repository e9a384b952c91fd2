"""Cherry payments -> CRM opportunities, for practices whose EMR has no integration of its own.

A completed payment marks the patient's open opportunity in the configured pipeline won, with the payment
amount (creating it in the configured stage when none is open); a full refund marks it lost; a partial
refund lowers its value; a cancellation marks it abandoned. The store remembers which payment state was
applied and to which opportunity, so each state is applied once.

Finding the opportunity costs a `GET /opportunities/search` unless the store already knows it: a refund or
cancellation goes straight to the opportunity recorded as won for that payment, and a completed payment to the
one the patient's last completed payment went to. Only ids recorded by a completed state since the practice's
current location and pipeline were first used are trusted (`trusted_since`): after a pipeline or location
change the older ones point elsewhere, and a refund that found nothing to mark keeps the id it had. A direct
write answered 404 (the opportunity was deleted in the CRM), or whose answer shows another contact or pipeline,
falls back to the search.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from cherry_sync.domain import PaymentStatus
from cherry_sync.domain.crm_values import money_to_json
from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.hooks import errors
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.reasons import ReasonCode
from cherry_sync.store import PaymentState

log = logging.getLogger(__name__)


class PipelineNotFoundError(CherrySyncError):
    """The registry names a pipeline or stage the location does not have: the practice fails until fixed."""

    reason_code = ReasonCode.PIPELINE_NOT_FOUND
    disposition = Disposition.FAIL


@dataclass(frozen=True)
class PipelineTarget:
    pipeline_id: str
    stage_id: str


def resolve_pipeline(crm: AesthetixCrmHook, pipeline: str, stage: str) -> PipelineTarget:
    """Find the pipeline and stage by id or (case-insensitive) name."""
    for candidate in crm.list_pipelines():
        if candidate.get("id") == pipeline or str(candidate.get("name", "")).casefold() == pipeline.casefold():
            for st in candidate.get("stages") or []:
                if isinstance(st, dict) and (
                    st.get("id") == stage or str(st.get("name", "")).casefold() == stage.casefold()
                ):
                    return PipelineTarget(candidate["id"], st["id"])
            raise PipelineNotFoundError(f"pipeline {candidate['id']} has no stage named in the registry")
    raise PipelineNotFoundError("the registry's opportunity pipeline does not exist in this CRM location")


def opportunity_name(payment_id: str) -> str:
    """Names carry the Cherry payment id (opaque), never patient data."""
    return f"Cherry payment {payment_id}"


class OpportunityUpdater:
    """Applies payment states to opportunities in one pipeline. Returns the opportunity id touched.

    `trusted_since`: opportunity ids the store recorded at or after this moment are in this location and
    pipeline and are written to directly; None trusts none of them (every payment searches first).
    """

    def __init__(
        self,
        crm: AesthetixCrmHook,
        target: PipelineTarget,
        *,
        dry_run: bool = False,
        trusted_since: datetime | None = None,
    ) -> None:
        self.crm = crm
        self.target = target
        self.dry_run = dry_run
        self.trusted_since = trusted_since
        # contact id -> its opportunities in the pipeline, from one listing of the pipeline (`prefetch`); used
        # for a contact's first look-up in the run only (a write makes it stale).
        self._listed: dict[str, list[dict]] = {}
        # Opportunities this run created (the outcome history tells a create from an update).
        self.created: set[str] = set()

    def needs_search(self, payment: PaymentState, known_id: str | None = None) -> bool:
        """Whether `apply` will look the contact's opportunities up (nothing recorded to go to directly)."""
        own = payment.crm_opportunity_id if self._trusted(payment) else None
        if PaymentStatus(payment.status) is PaymentStatus.COMPLETED:
            return (own or known_id) is None
        return own is None

    def prefetch(self, contact_ids: set[str]) -> None:
        """List the pipeline's opportunities once for contacts about to be looked up, when that is cheaper.

        A listing page holds 100 opportunities; it replaces one search per contact only when the whole pipeline
        (`meta.total` of the first page) takes fewer pages than there are contacts. Otherwise the first page is
        all it cost, and each contact is searched.
        """
        self._listed = {}
        if self.dry_run or len(contact_ids) < 2:
            return
        listed: dict[str, list[dict]] = {contact_id: [] for contact_id in contact_ids}
        for page, total in self.crm.iter_opportunity_pages(pipeline_id=self.target.pipeline_id):
            too_large = total is None or math.ceil(total / 100) >= len(contact_ids)
            if too_large and len(page) == 100:
                return  # a large pipeline (or one of unknown size): per-contact searches are cheaper
            for opp in page:
                if opp.get("contactId") in listed:
                    listed[opp["contactId"]].append(opp)
        self._listed = listed

    def apply(self, payment: PaymentState, contact_id: str, known_id: str | None = None) -> str | None:
        """Apply the payment's state. `known_id`: the opportunity the patient's last completed payment went to, as
        the store recorded it at or after `trusted_since` (see `SyncStore.get_opportunity_ids`)."""
        if self.dry_run:
            return payment.crm_opportunity_id
        try:
            return self._apply(payment, contact_id, known_id)
        finally:
            self._listed.pop(contact_id, None)  # written (or about to be): the listing is stale for this contact

    def _apply(self, payment: PaymentState, contact_id: str, known_id: str | None) -> str | None:
        status = PaymentStatus(payment.status)
        own = payment.crm_opportunity_id if self._trusted(payment) else None
        # HighLevel keeps one opportunity per contact and pipeline (unless the location allows duplicates),
        # so a completed payment works on the opportunity it touched before, else on the contact's one in the
        # pipeline. A refund or cancellation only ever touches the opportunity won for that same payment.
        if status is PaymentStatus.COMPLETED:
            direct = own or known_id
            if direct is not None and self._complete_known(direct, payment, contact_id):
                return direct
            return self._complete(payment, contact_id, self._find(contact_id, payment.crm_opportunity_id))
        if own is not None:
            try:
                self._settle(own, payment, status)
                return own
            except errors.NotFoundError:
                log.info("opportunity %s is gone from the CRM (deleted?); searching the contact's", own)
        opportunity = self._find_own(contact_id, payment)
        if opportunity is None:
            # Nothing was won for this payment in the CRM, so there is nothing to mark lost or lower.
            return None
        self._settle(opportunity["id"], payment, status)
        return opportunity["id"]

    def _trusted(self, payment: PaymentState) -> bool:
        """Whether the payment's recorded opportunity is in this location and pipeline. Only a completed state
        always records the opportunity it was written to: a refund that found nothing keeps the older id."""
        return (
            self.trusted_since is not None
            and payment.crm_opportunity_id is not None
            and payment.applied_status == PaymentStatus.COMPLETED.value
            and payment.applied_at is not None
            and payment.applied_at >= self.trusted_since
        )

    def _complete_known(self, opportunity_id: str, payment: PaymentState, contact_id: str) -> bool:
        """Write the completed payment to an opportunity the store knows, without a search. False when that
        opportunity is gone (404) or the CRM's answer shows it belongs elsewhere: the caller searches then."""
        try:
            updated = self.crm.update_opportunity(opportunity_id, {"monetaryValue": money_to_json(payment.amount)})
        except errors.NotFoundError:
            log.info("opportunity %s is gone from the CRM (deleted?); searching the contact's", opportunity_id)
            return False
        if updated.get("contactId", contact_id) != contact_id or (
            updated.get("pipelineId", self.target.pipeline_id) != self.target.pipeline_id
        ):
            log.warning(
                "opportunity %s recorded for this patient now belongs to another contact or pipeline; "
                "searching the contact's own",
                opportunity_id,
            )
            return False
        if updated.get("status") != "won":
            self.crm.set_opportunity_status(opportunity_id, "won")
        return True

    def _complete(self, payment: PaymentState, contact_id: str, opportunity: dict | None) -> str:
        """Mark the found opportunity won with the payment's amount, or create it won in the configured stage."""
        value = money_to_json(payment.amount)
        if opportunity is None:
            created = self.crm.create_opportunity(
                {
                    "pipelineId": self.target.pipeline_id,
                    "pipelineStageId": self.target.stage_id,
                    "contactId": contact_id,
                    "name": opportunity_name(payment.payment_id),
                    "status": "won",
                    "monetaryValue": value,
                }
            )
            self.created.add(created["id"])
            return created["id"]
        self.crm.update_opportunity(opportunity["id"], {"monetaryValue": value})
        if opportunity.get("status") != "won":
            self.crm.set_opportunity_status(opportunity["id"], "won")
        return opportunity["id"]

    def _settle(self, opportunity_id: str, payment: PaymentState, status: PaymentStatus) -> None:
        """A full refund marks the opportunity lost, a partial one lowers its value, a cancellation abandons it."""
        if status is PaymentStatus.REFUNDED:
            self.crm.set_opportunity_status(opportunity_id, "lost")
        elif status is PaymentStatus.PARTIALLY_REFUNDED:
            self.crm.update_opportunity(
                opportunity_id, {"monetaryValue": money_to_json(payment.amount - payment.refund_amount)}
            )
        elif status is PaymentStatus.CANCELLED:
            self.crm.set_opportunity_status(opportunity_id, "abandoned")

    def _find_own(self, contact_id: str, payment: PaymentState) -> dict | None:
        """The opportunity won for this payment: the one recorded, or (if the record was lost, e.g. a crash
        right after the create) the one named after it. None when nothing was ever won for the payment, e.g.
        one that predates the sync: the contact's opportunity then belongs to another payment."""
        found = self._opportunities_of(contact_id)
        if payment.crm_opportunity_id is not None:
            match = next((o for o in found if o.get("id") == payment.crm_opportunity_id), None)
            if match is not None:
                return match
        name = opportunity_name(payment.payment_id)
        return next((o for o in found if o.get("name") == name), None)

    def _find(self, contact_id: str, known_id: str | None) -> dict | None:
        """The opportunity this payment touched before, else the contact's open one, else its latest."""
        found = self._opportunities_of(contact_id)
        if known_id is not None:
            match = next((o for o in found if o.get("id") == known_id), None)
            if match is not None:
                return match
        open_ones = [o for o in found if o.get("status") == "open"]
        pool = open_ones or found
        return max(pool, key=lambda o: str(o.get("updatedAt") or o.get("createdAt") or "")) if pool else None

    def _opportunities_of(self, contact_id: str) -> list[dict]:
        listed = self._listed.get(contact_id)
        if listed is not None:
            return listed
        return self.crm.search_opportunities(pipeline_id=self.target.pipeline_id, contact_id=contact_id)
