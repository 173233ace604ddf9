"""Ledger event types of mint and redemption requests."""

from __future__ import annotations

from ledger.events import BaseUnits, EventData, event_type
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, states


@event_type("mint.requested")
class MintRequested(EventData):
    mint_id: int
    participant_id: int
    product: str
    chain: str
    wallet_address: str
    quantity_nano: BaseUnits
    token_base_units: BaseUnits
    funding: str
    notional_cents: int
    cash_due_cents: int
    fee_cents: int = 0  # the issuer's fee quoted on a cash mint (absent from events before it was kept)
    needs_approval: bool


@event_type("redemption.requested")
class RedemptionRequested(EventData):
    redemption_id: int
    participant_id: int
    product: str
    chain: str
    wallet_address: str
    quantity_nano: BaseUnits
    token_base_units: BaseUnits
    payout: str
    notional_cents: int
    needs_approval: bool


class StateChanged(EventData):
    """A lifecycle transition: from, to, who (in metadata), why, and references to what proves it."""

    request_id: int
    from_state: str
    to_state: str
    reason: str = ""
    refs: dict[str, str] = {}
    # The money and quantities the transition settled on (refund_cents, shares_owed_nano, ...), exact.
    amounts: dict[str, BaseUnits] = {}


class Approved(EventData):
    request_id: int
    approved_by: int


# One event type per target state ("mint.funded", "redemption.burned", ...), all with one schema.
for _state in states(MintLifecycle):
    if _state != "requested":
        event_type(f"mint.{_state}")(StateChanged)
for _state in states(RedemptionLifecycle):
    if _state != "requested":
        event_type(f"redemption.{_state}")(StateChanged)
event_type("mint.approved")(Approved)
event_type("redemption.approved")(Approved)
