"""What the chains report to the rest of the house: confirmed redemptions, handed on exactly once, and
each token's total supply, recorded with custody as observed supply.

The watcher (chains.watcher) decides when a `Redeemed` event is confirmed; this module hands each
confirmed event to the outbox's owner (chains.outcomes `on_redeemed`) in the transaction that marks
it handled, under the event's row lock. A worker killed before the commit leaves it unhandled and the
next scan hands it on; after the commit it is never handed on again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from chains.config import solana_chain_names
from chains.evm import EvmChain, evm_chain, ref_bytes, ref_text
from chains.models import RedeemedEventSeen
from chains.outcomes import ChainOp, RedeemedDeposit, outbox
from chains.watcher import redeemed_scan
from custody.models import ChainDeployment, SupplyObservation
from custody.services import supply_observation_record
from ledger.selectors import head

SUPPLY_ACTOR = "task:chains.observe_supply"

logger = logging.getLogger(__name__)


def deployed_tokens(chain_name: str) -> list[tuple[str, int]]:
    """(address, block to start watching from) of every token deployed on the chain: its deployment
    block when recorded, else 0 (a deployment recorded before the block was kept)."""
    return [(address, block or 0) for address, block in ChainDeployment.objects.filter(chain=chain_name)
            .exclude(address="").values_list("address", "deployed_block")]


def redemptions_watch(*, chain_name: str) -> dict:
    chain = evm_chain(chain_name)
    chain.check_chain_id()
    tokens = deployed_tokens(chain_name)
    seen = confirmed = 0
    for token, deployed_block in tokens:
        if not chain.w3.eth.get_code(chain.w3.to_checksum_address(token)):
            continue
        scan = redeemed_scan(chain=chain, token=token, start_block=deployed_block)
        seen += len(scan.seen)
        confirmed += len(scan.confirmed)
    handled = deposits_hand_on(chain_name=chain_name)
    return {"tokens": len(tokens), "seen": seen, "confirmed": confirmed, "handled": handled}


def deposits_hand_on(*, chain_name: str, limit: int = 1000) -> int:
    ids = list(RedeemedEventSeen.objects.filter(chain=chain_name, status=RedeemedEventSeen.Status.CONFIRMED,
                                                handled_at__isnull=True)
               .order_by("block_number", "log_index").values_list("pk", flat=True)[:limit])
    handled = 0
    for event_id in ids:
        with transaction.atomic():
            event = RedeemedEventSeen.objects.select_for_update(skip_locked=True).filter(
                pk=event_id, handled_at__isnull=True, status=RedeemedEventSeen.Status.CONFIRMED).first()
            if event is None:
                continue
            outbox().on_redeemed(RedeemedDeposit(
                chain=event.chain, token=event.token, holder=event.holder,
                amount_base_units=int(event.amount_base_units), reference=ref_text(bytes.fromhex(event.ref[2:])),
                ref_hex=event.ref, tx_hash=event.tx_hash, log_index=event.log_index,
                block_number=event.block_number))
            event.handled_at = timezone.now()
            event.save(update_fields=["handled_at", "updated_at"])
            handled += 1
    return handled


@dataclass(frozen=True)
class LedgerSnapshot:
    position: int
    in_flight: list[ChainOp]


def ledger_snapshot(*, chain_name: str, product_id: int, attempts: int = 5) -> LedgerSnapshot | None:
    """The ledger head and the operations in flight at it, from one database snapshot (REPEATABLE
    READ): a confirmation commits its ledger event and its operation's status together, so each
    operation is either on the ledger at `position` or in `in_flight`, never both or neither. That holds
    only when every committed event is sealed, so the head covers them all: a confirmation journalled
    behind another writer's seal has its status committed but its event not yet at the head (it would
    show as an unexplained difference). So the journal is sealed first and the snapshot taken only if it
    finds none waiting; after `attempts` tries (writers keep journalling) None: skip this reading."""
    from ledger.selectors import journal_pending
    from ledger.services import seal_journal

    own_transaction = not connection.in_atomic_block  # else the caller's transaction is the snapshot
    for _ in range(attempts if own_transaction else 1):
        if own_transaction:
            seal_journal()
        with transaction.atomic():
            if own_transaction:
                connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if journal_pending():
                continue
            return LedgerSnapshot(position=head().position,
                                  in_flight=outbox().in_flight(chain=chain_name, product_id=product_id))
    logger.info("%s: the journal kept events unsealed; supply of product %s read next time", chain_name, product_id)
    return None


def in_flight_landed(*, chain: EvmChain, token: str, operations: list[ChainOp], block: int | str) -> int:
    """Net base units of `operations` the contract records as done at `block` (mints +, burns -): its
    own record by reference, so exact whichever transaction (or replacement) carried them."""
    net = 0
    for op in operations:
        ref = ref_bytes(op.reference)
        if op.kind == "mint" and chain.ref_minted(token, ref, block=block):
            net += op.amount_base_units
        elif op.kind == "burn" and chain.ref_burned(token, ref, block=block):
            net -= op.amount_base_units
    return net


def supply_observe(*, chain_name: str) -> list[SupplyObservation]:
    """Read every deployed token's total supply on `chain_name` at the confirmation depth and record it
    with custody (custody.supply: the rule, and why the ledger is read before the chain)."""
    if chain_name in solana_chain_names():
        from chains.watcher_solana import supply_observe as solana_supply_observe

        return solana_supply_observe(chain_name=chain_name)
    chain = evm_chain(chain_name)
    chain.check_chain_id()
    recorded = []
    for deployment in ChainDeployment.objects.filter(chain=chain_name).exclude(address="").select_related("product"):
        snapshot = ledger_snapshot(chain_name=chain_name, product_id=deployment.product_id)
        if snapshot is None:
            continue
        block = chain.head() - chain.config.confirmations
        block_hash = chain.block_hash(block) if block >= 0 else None
        if block_hash is None or (deployment.deployed_block is not None and block < deployment.deployed_block):
            continue  # the token is younger than the depth: nothing to read yet
        token = chain.w3.to_checksum_address(deployment.address)
        if not chain.w3.eth.get_code(token, block_identifier=block_hash):
            continue
        # Every read at the block's hash, so a reorg between two reads cannot mix two chains' states.
        supply = chain.total_supply(token, block=block_hash)
        landed = in_flight_landed(chain=chain, token=token, operations=snapshot.in_flight, block=block_hash)
        recorded.append(supply_observation_record(
            product=deployment.product, chain=chain_name, supply_base_units=supply, block=block,
            block_hash=block_hash, observed_at=timezone.now(), actor=SUPPLY_ACTOR,
            ledger_position=snapshot.position, in_flight_base_units=landed))
    return recorded
