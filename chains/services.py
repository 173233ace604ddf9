"""Chain actions the issuer takes synchronously (deploying a token, an admin or pauser call), each
with a nonce from chains.nonces.

The nonce row stays locked while the transaction is signed and handed to the node, and is released
by the commit that follows: a process that dies before the node has it leaves the nonce untaken, and
one that dies after leaves a transaction the chain counts, which the next assignment steps over (it
moves to the chain's pending nonce). So these actions never leave a gap. The executor's batched mints
and burns take another path: their signed transactions are recorded before broadcasting, in the
transaction that took the nonce (the executor, next).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.db import transaction

from chains.evm import ChainError, EvmChain, Receipt, SignedTx
from chains.nonces import nonce_assign
from chains.signers import Signer, redemption_vault, signer_for, solana_signer_for
from chains.solana import SolanaChain, SolanaError


def sign_with_next_nonce(*, chain: EvmChain, signer: Signer, build: Callable[[int], SignedTx], count: int = 1
                         ) -> SignedTx:
    """Take the signer's next nonce and sign with it, in the caller's transaction (which must record the
    result before it commits, or broadcast it: see the module docstring)."""
    nonce = nonce_assign(chain=chain.name, address=signer.address, count=count,
                         chain_pending_nonce=lambda: chain.pending_nonce(signer.address))
    return build(nonce)


def transact(*, chain: EvmChain, signer: Signer, build: Callable[[int], SignedTx], timeout_s: float = 60,
             require_success: bool = True) -> Receipt:
    """Sign, hand to the node and wait for the receipt; a reverted transaction raises ChainError unless
    `require_success` is False."""
    with transaction.atomic():
        signed = sign_with_next_nonce(chain=chain, signer=signer, build=build)
        chain.send_raw(signed)
    receipt = chain.wait_for_receipt(signed.tx_hash, timeout_s=timeout_s)
    if require_success and not receipt.succeeded:
        raise ChainError(f"{chain.name}: transaction {signed.tx_hash} reverted")
    return receipt


def token_call(*, chain: EvmChain, signer: Signer, token: str, function: str, args: Sequence = ()) -> Receipt:
    """An admin or pauser call on a token (pause, unpause, setRedemptionVault, grantRole, ...)."""
    return transact(chain=chain, signer=signer, build=lambda nonce: chain.sign_call(
        signer=signer, token=token, function=function, args=args, nonce=nonce))


def token_deploy(*, chain: EvmChain, name: str, symbol: str, decimals: int, vault: str | None = None) -> str:
    """Deploy a product's token (see `token_deploy_receipt`); its address."""
    return token_deploy_receipt(chain=chain, name=name, symbol=symbol, decimals=decimals, vault=vault).contract_address


def token_deploy_receipt(*, chain: EvmChain, name: str, symbol: str, decimals: int, vault: str | None = None
                         ) -> Receipt:
    """Deploy a product's token on `chain` with the configured signers in their roles; the receipt (its
    contract address, and the block a watcher of the token starts from).

    The admin key deploys and holds DEFAULT_ADMIN; the operator key gets MINTER and BURNER; the pauser
    key PAUSER; redeemed tokens go to the chain's redemption vault."""
    if not 0 <= decimals <= 36:
        raise ValueError("decimals must be within 0..36")
    admin = signer_for(chain.name, "admin")
    operator = signer_for(chain.name, "operator")
    pauser = signer_for(chain.name, "pauser")
    vault = vault or redemption_vault(chain.name)
    receipt = transact(chain=chain, signer=admin, build=lambda nonce: chain.sign_deploy(
        signer=admin, name=name, symbol=symbol, decimals=decimals, admin=admin.address, minter=operator.address,
        burner=operator.address, pauser=pauser.address, vault=vault, nonce=nonce))
    if not receipt.contract_address:
        raise ChainError(f"{chain.name}: the deployment {receipt.tx_hash} created no contract")
    return receipt


def solana_mint_deploy(*, chain: SolanaChain, name: str, symbol: str, decimals: int, uri: str = "",
                       multiplier: Decimal = Decimal(1), timeout_s: float = 60) -> str:
    """Create a product's Token-2022 mint (metadata, multiplier, the redemption account) and wait for it
    at the configured commitment; its address. On the local RPC the operator is funded first (an
    airdrop; a real cluster's operator is funded by operations)."""
    if chain.is_local():
        chain.fund(solana_signer_for("operator").pubkey())
    mint, signed = chain.create_mint(decimals=decimals, name=name, symbol=symbol, uri=uri, multiplier=multiplier)
    chain.send(signed.wire)
    status = chain.wait(signed.signature, timeout_s=timeout_s)
    if status.failed:
        raise SolanaError(f"{chain.name}: the mint creation {signed.signature} failed")
    return mint


def reserve_feed_deploy(*, chain: EvmChain, description: str, decimals: int = 9) -> str:
    """Deploy a product's ReserveFeed (contracts/ReserveFeed.sol) on `chain`: the admin key holds
    DEFAULT_ADMIN, the operator key (the executor's) is the updater. Its address."""
    from chains.evm import feed_artifact

    admin = signer_for(chain.name, "admin")
    operator = signer_for(chain.name, "operator")
    artifact = feed_artifact()
    constructor = next(item for item in artifact["abi"] if item["type"] == "constructor")
    encoded = chain.w3.codec.encode([i["type"] for i in constructor["inputs"]],
                                    [description, decimals, admin.address, operator.address])
    receipt = transact(chain=chain, signer=admin, build=lambda nonce: chain.sign(
        signer=admin, to=None, data=artifact["bytecode"] + encoded.hex(), nonce=nonce))
    if not receipt.contract_address:
        raise ChainError(f"{chain.name}: the deployment {receipt.tx_hash} created no contract")
    return receipt.contract_address
