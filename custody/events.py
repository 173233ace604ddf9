"""Event types the custody app appends to the ledger. Decimals travel as strings, quantities as ints."""

from __future__ import annotations

from ledger.events import BaseUnits, EventData, event_type


@event_type("custody.order_placed", version=1)
class OrderPlaced(EventData):
    order_id: int
    broker: str
    ticker: str
    side: str
    quantity_nano: BaseUnits
    client_order_id: str


@event_type("custody.order_status_changed", version=1)
class OrderStatusChanged(EventData):
    order_id: int
    status: str
    broker_order_id: str
    filled_quantity_nano: BaseUnits
    reason: str = ""


@event_type("custody.fill_recorded", version=1)
class FillRecorded(EventData):
    fill_id: int
    order_id: int
    broker: str
    broker_fill_id: str
    ticker: str
    side: str
    quantity_nano: BaseUnits
    price: str
    gross_cents: BaseUnits
    fee_cents: BaseUnits
    executed_at: str
    trade_date: str
    settlement_date: str


@event_type("custody.fill_settled", version=1)
class FillSettled(EventData):
    fill_id: int
    order_id: int
    custodian: str
    ticker: str
    side: str
    quantity_nano: BaseUnits
    settlement_date: str


@event_type("custody.in_kind_transfer_confirmed", version=1)
class InKindTransferConfirmed(EventData):
    transfer_id: int
    direction: str  # "receive" (into custody) or "deliver" (out of custody)
    custodian: str
    ticker: str
    quantity_nano: BaseUnits
    counterparty_account: str
    reference: str
    custodian_confirmation: str


@event_type("custody.statement_imported", version=1)
class StatementImported(EventData):
    statement_id: int
    custodian: str
    account_number: str
    statement_ref: str
    as_of: str
    format: str
    sha256: str
    holdings: dict[str, BaseUnits]  # ticker -> nano-shares


@event_type("custody.reconciliation_completed", version=1)
class ReconciliationCompleted(EventData):
    run_id: int
    pairs_checked: int
    breaks_opened: int
    breaks_cleared: int
    open_breaks: int


@event_type("custody.break_opened", version=1)
class BreakOpened(EventData):
    break_id: int
    custodian: str
    ticker: str
    statement_as_of: str
    expected_nano: BaseUnits
    reported_nano: BaseUnits
    difference_nano: BaseUnits
    blocks_minting: bool


@event_type("custody.break_updated", version=1)
class BreakUpdated(EventData):
    break_id: int
    statement_as_of: str
    expected_nano: BaseUnits
    reported_nano: BaseUnits
    difference_nano: BaseUnits
    blocks_minting: bool


@event_type("custody.break_cleared", version=1)
class BreakCleared(EventData):
    break_id: int
    statement_as_of: str


@event_type("custody.break_resolved", version=1)
class BreakResolved(EventData):
    break_id: int
    reason: str


@event_type("custody.product_status_changed", version=1)
class ProductStatusChanged(EventData):
    product: str
    status: str
    reason: str


@event_type("custody.deployment_address_set", version=1)
class DeploymentAddressSet(EventData):
    product: str
    chain: str
    address: str


@event_type("custody.product_multiplier_changed", version=1)
class ProductMultiplierChanged(EventData):
    product: str
    previous: str
    multiplier: str
    reason: str


@event_type("custody.product_registered", version=1)
class ProductRegistered(EventData):
    product: str
    ticker: str
    isin: str
    multiplier: str


@event_type("custody.deployment_registered", version=1)
class DeploymentRegistered(EventData):
    product: str
    chain: str
    decimals: int
    address: str


@event_type("custody.supply_observed", version=1)
class SupplyObserved(EventData):
    """A token's total supply on a chain read at `block` (EVM block number, Solana slot), compared with
    the ledger's tokens/<chain>/<SYMBOL> as of `ledger_position`. difference = supply - ledger;
    in_flight: the part our own operations, landed by `block` but not yet recorded, explain."""

    product: str
    chain: str
    supply_base_units: BaseUnits
    block: int
    block_hash: str
    ledger_position: int
    ledger_outstanding_base_units: BaseUnits
    in_flight_base_units: BaseUnits
    difference_base_units: BaseUnits
    observed_at: str


@event_type("custody.supply_break_opened", version=1)
class SupplyBreakOpened(EventData):
    break_id: int
    product: str
    chain: str
    block: int
    supply_base_units: BaseUnits
    ledger_outstanding_base_units: BaseUnits
    in_flight_base_units: BaseUnits
    unexplained_base_units: BaseUnits


@event_type("custody.supply_break_updated", version=1)
class SupplyBreakUpdated(EventData):
    break_id: int
    block: int
    supply_base_units: BaseUnits
    ledger_outstanding_base_units: BaseUnits
    in_flight_base_units: BaseUnits
    unexplained_base_units: BaseUnits


@event_type("custody.supply_break_cleared", version=1)
class SupplyBreakCleared(EventData):
    break_id: int
    block: int


@event_type("custody.supply_break_resolved", version=1)
class SupplyBreakResolved(EventData):
    break_id: int
    reason: str
