"""The chain executor: pending mint operations of one chain become mintBatch transactions, each
recorded signed before it is broadcast (architecture section 5, exactly once).

One batch, step by step:

1. In one transaction: claim up to the chain's batch size of pending mint operations of one product
   (FOR UPDATE SKIP LOCKED, so concurrent executors take disjoint batches), take the operator's next
   nonce (chains.nonces, row locked to the commit), sign the mintBatch, and record the signed
   transaction and its hash on every operation of the batch (`on_signed`). Commit.
2. Broadcast the recorded bytes, then record that (`on_broadcast`).

A worker killed during 1 leaves nothing (the nonce and the claim roll back with it); killed after the
commit, it leaves operations `signed` with their transaction on record, and the next run broadcasts
exactly those bytes (step 0 below) before signing anything new, so the nonce is used by the
transaction on record and never by another. The contract refuses a reference it has minted, so even
a second transaction for the same operation could not mint twice.

Following broadcast transactions to their confirmation depth, burns, fee bumps at the same nonce and
failure handling are the next steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction

from chains.evm import EvmChain, Mint, evm_chain, ref_bytes
from chains.outcomes import ChainOp, outbox
from chains.services import sign_with_next_nonce
from chains.signers import signer_for
from custody.models import ChainDeployment

logger = logging.getLogger(__name__)

MAX_BATCHES_PER_RUN = 20  # a run ends; the next one (beat or re-queue) carries on


class TokenNotDeployed(RuntimeError):
    pass


@dataclass
class RunResult:
    rebroadcast: list[str] = field(default_factory=list)
    broadcast: list[str] = field(default_factory=list)  # tx hashes, one per batch
    operations: int = 0


def token_address(*, chain: EvmChain, product_id: int) -> str:
    """The product's token on `chain`, checked to be a contract: a mint sent to an address without code
    would "succeed" and mint nothing."""
    address = (ChainDeployment.objects.filter(product_id=product_id, chain=chain.name)
               .values_list("address", flat=True).first())
    if not address or not chain.w3.eth.get_code(chain.w3.to_checksum_address(address)):
        raise TokenNotDeployed(f"product {product_id} has no token contract on {chain.name} (address {address!r})")
    return address


def broadcast_signed(*, chain: EvmChain, limit: int = 1000) -> list[str]:
    """Step 0: operations signed by an earlier run that never recorded the broadcast. Their recorded
    bytes are sent again (harmless if the node has them) and the broadcast recorded."""
    hooks = outbox()
    sent: dict[str, list[ChainOp]] = {}
    for op in hooks.signed_not_broadcast(chain=chain.name, limit=limit):
        sent.setdefault(op.tx_hash, []).append(op)
    for tx_hash, ops in sent.items():
        actual = chain.send_raw(bytes.fromhex(ops[0].signed_tx.removeprefix("0x")))
        if actual.lower() != tx_hash.lower():
            raise RuntimeError(f"{chain.name}: recorded hash {tx_hash} is not the hash of the recorded bytes")
        for op in ops:
            hooks.on_broadcast(op)
    return list(sent)


def sign_batch(*, chain: EvmChain) -> tuple[str, str, list[ChainOp]] | None:
    """Step 1: claim, sign and record one batch; (signed tx hex, tx hash, operations), or None if
    nothing is pending."""
    hooks = outbox()
    operator = signer_for(chain.name, "operator")
    with transaction.atomic():
        ops = hooks.claim_pending(chain=chain.name, kind="mint", limit=chain.config.batch_size)
        if not ops:
            return None
        token = token_address(chain=chain, product_id=ops[0].product_id)
        mints = [Mint(to=op.address, amount_base_units=op.amount_base_units, ref=ref_bytes(op.reference))
                 for op in ops]
        signed = sign_with_next_nonce(chain=chain, signer=operator, build=lambda nonce: chain.sign_mint_batch(
            signer=operator, token=token, mints=mints, nonce=nonce))
        for op in ops:
            hooks.on_signed(op, signed_tx=signed.raw_hex, tx_hash=signed.tx_hash)
    logger.info("signed a mint batch of %s on %s: %s (nonce %s)", len(ops), chain.name, signed.tx_hash, signed.nonce)
    return signed.raw_hex, signed.tx_hash, ops


def execute_pending(*, chain_name: str, max_batches: int = MAX_BATCHES_PER_RUN) -> RunResult:
    chain = evm_chain(chain_name)
    chain.check_chain_id()
    hooks = outbox()
    result = RunResult(rebroadcast=broadcast_signed(chain=chain))
    for _ in range(max_batches):
        batch = sign_batch(chain=chain)
        if batch is None:
            break
        raw_hex, tx_hash, ops = batch
        chain.send_raw(bytes.fromhex(raw_hex.removeprefix("0x")))
        for op in ops:
            hooks.on_broadcast(op)
        result.broadcast.append(tx_hash)
        result.operations += len(ops)
    return result
