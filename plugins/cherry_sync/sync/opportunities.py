"""Cherry payments -> CRM opportunities, for practices whose EMR has no integration of its own.

A completed payment marks the patient's open opportunity in the configured pipeline won, with the payment
amount (creating it in the configured stage when none is open); a full refund marks it lost; a partial
refund lowers its value; a cancellation marks it abandoned. The store remembers which payment state was
applied and to which opportunity, so each state is applied once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cherry_sync.domain import PaymentStatus
from cherry_sync.domain.crm_values import money_to_json
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.store import PaymentState

log = logging.getLogger(__name__)


class PipelineNotFoundError(Exception):
    """The registry names a pipeline or stage the location does not have."""

    reason_code = "pipeline_not_found"


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
    """Applies payment states to opportunities in one pipeline. Returns the opportunity id touched."""

    def __init__(self, crm: AesthetixCrmHook, target: PipelineTarget, *, dry_run: bool = False) -> None:
        self.crm = crm
        self.target = target
        self.dry_run = dry_run

    def apply(self, payment: PaymentState, contact_id: str) -> str | None:
        status = PaymentStatus(payment.status)
        if self.dry_run:
            return payment.crm_opportunity_id
        # HighLevel keeps one opportunity per contact and pipeline (unless the location allows duplicates),
        # so a completed payment works on the opportunity it touched before, else on the contact's one in the
        # pipeline. A refund or cancellation only ever touches the opportunity won for that same payment.
        if status is not PaymentStatus.COMPLETED:
            opportunity = self._find_own(contact_id, payment)
        else:
            opportunity = self._find(contact_id, payment.crm_opportunity_id)
        if status is PaymentStatus.COMPLETED:
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
                return created["id"]
            self.crm.update_opportunity(opportunity["id"], {"monetaryValue": value})
            if opportunity.get("status") != "won":
                self.crm.set_opportunity_status(opportunity["id"], "won")
            return opportunity["id"]
        if opportunity is None:
            # Nothing was won for this payment in the CRM, so there is nothing to mark lost or lower.
            return None
        if status is PaymentStatus.REFUNDED:
            self.crm.set_opportunity_status(opportunity["id"], "lost")
        elif status is PaymentStatus.PARTIALLY_REFUNDED:
            self.crm.update_opportunity(
                opportunity["id"], {"monetaryValue": money_to_json(payment.amount - payment.refund_amount)}
            )
        elif status is PaymentStatus.CANCELLED:
            self.crm.set_opportunity_status(opportunity["id"], "abandoned")
        return opportunity["id"]

    def _find_own(self, contact_id: str, payment: PaymentState) -> dict | None:
        """The opportunity won for this payment: the one recorded, or (if the record was lost, e.g. a crash
        right after the create) the one named after it. None when nothing was ever won for the payment, e.g.
        one that predates the sync: the contact's opportunity then belongs to another payment."""
        found = self.crm.search_opportunities(pipeline_id=self.target.pipeline_id, contact_id=contact_id)
        if payment.crm_opportunity_id is not None:
            match = next((o for o in found if o.get("id") == payment.crm_opportunity_id), None)
            if match is not None:
                return match
        name = opportunity_name(payment.payment_id)
        return next((o for o in found if o.get("name") == name), None)

    def _find(self, contact_id: str, known_id: str | None) -> dict | None:
        """The opportunity this payment touched before, else the contact's open one, else its latest."""
        found = self.crm.search_opportunities(pipeline_id=self.target.pipeline_id, contact_id=contact_id)
        if known_id is not None:
            match = next((o for o in found if o.get("id") == known_id), None)
            if match is not None:
                return match
        open_ones = [o for o in found if o.get("status") == "open"]
        pool = open_ones or found
        return max(pool, key=lambda o: str(o.get("updatedAt") or o.get("createdAt") or "")) if pool else None
