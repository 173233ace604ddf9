"""The EVM adapter (web3.py): what the issuer does on Ethereum, Arbitrum and Base, and nothing else
(architecture section 5).

It builds and signs transactions but never decides when to send them: the caller takes the nonce
(chains.nonces), records the signed bytes and their hash, and only then calls `send_raw`, so a
process killed at any instant leaves either nothing or a transaction on record that a retry
re-broadcasts or looks up by hash. It knows tokens, amounts in base units and 32-byte references;
it knows nothing of mints, redemptions or the ledger.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, IPCProvider, Web3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound, Web3RPCError

from chains.config import EvmChainConfig
from chains.signers import Signer

ARTIFACT = Path(__file__).resolve().parent.parent / "contracts" / "artifacts" / "IssuerToken.json"
FEED_ARTIFACT = ARTIFACT.with_name("ReserveFeed.json")
GAS_MARGIN = 1.25  # over eth_estimateGas: state can change between estimate and inclusion
MAX_REF_BYTES = 32
MINT_BATCH_SELECTOR = "0x" + keccak(text="mintBatch(address[],uint256[],bytes32[])")[:4].hex()
# A replacement at the same nonce must raise both fees by at least this fraction (geth and anvil ask 10%).
REPLACEMENT_BUMP_NUM, REPLACEMENT_BUMP_DEN = 1125, 1000


class ChainError(RuntimeError):
    """The chain refused or could not answer; the message never carries key material."""


class FeesAboveCap(ChainError):
    """Base fee plus tip exceeds the configured cap: wait, do not overpay."""


class WrongChain(ChainError):
    """The node answers for another chain id than the configuration says: never sign for it."""


@functools.cache
def token_artifact() -> dict:
    return json.loads(ARTIFACT.read_text(encoding="utf-8"))


MULTIPLIER_DECIMALS = 18


def multiplier_scaled(multiplier) -> int:
    """A Decimal multiplier as the contract's 18-decimal fixed point, exactly or refused."""
    from decimal import Decimal

    scaled = Decimal(multiplier) * 10**MULTIPLIER_DECIMALS
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise ValueError(f"multiplier {multiplier} is not a positive multiple of 1e-{MULTIPLIER_DECIMALS}")
    return int(scaled)


@functools.cache
def feed_artifact() -> dict:
    return json.loads(FEED_ARTIFACT.read_text(encoding="utf-8"))


def ref_bytes(reference: str) -> bytes:
    """A request reference ("mint-42", "redemption-7") as the bytes32 the contract keys on: its ASCII,
    right-padded with zeros, so a block explorer shows it readably and `ref_text` reverses it."""
    raw = reference.encode("ascii")
    if not raw or len(raw) > MAX_REF_BYTES or b"\0" in raw:
        raise ValueError(f"a reference is 1..{MAX_REF_BYTES} ASCII characters without NUL: {reference!r}")
    return raw.ljust(MAX_REF_BYTES, b"\0")


def ref_text(ref: bytes) -> str | None:
    """The reference a bytes32 carries, or None if it is not one of ours (not NUL-padded ASCII)."""
    stripped = bytes(ref).rstrip(b"\0")
    if not stripped or b"\0" in stripped:
        return None
    try:
        return stripped.decode("ascii")
    except UnicodeDecodeError:
        return None


def web3_for(rpc_url: str, *, timeout_s: float = 30) -> Web3:
    """http(s):// URLs go over HTTP; anything else is an IPC socket path (the embedded anvil's)."""
    if rpc_url.startswith(("http://", "https://")):
        return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
    return Web3(IPCProvider(rpc_url.removeprefix("ipc://"), timeout=timeout_s))


@dataclass(frozen=True)
class Mint:
    to: str
    amount_base_units: int
    ref: bytes  # 32 bytes, see ref_bytes


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str  # 0x-hex keccak of the raw (EIP-2718) bytes
    nonce: int
    sender: str

    @property
    def raw_hex(self) -> str:
        return "0x" + self.raw.hex()


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    succeeded: bool
    block_number: int
    block_hash: str
    gas_used: int
    contract_address: str | None
    confirmations: int  # blocks on top of the including one, the including one counted (1 = just mined)


@dataclass(frozen=True)
class RefRecord:
    """The contract's event for a reference it minted (`Minted`) or burned (`BurnedFromVault`)."""

    tx_hash: str
    block_number: int
    holder: str  # the recipient of a mint, the vault of a burn
    amount_base_units: int

    def matches(self, *, holder: str, amount_base_units: int) -> bool:
        return self.holder.lower() == holder.lower() and self.amount_base_units == amount_base_units


@dataclass(frozen=True)
class RedeemedLog:
    token: str
    holder: str
    amount_base_units: int
    ref: bytes
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str


def _hex(value: Any) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return text if text.startswith("0x") else "0x" + text


class EvmChain:
    def __init__(self, config: EvmChainConfig) -> None:
        self.config = config
        self.w3 = web3_for(config.rpc_url)
        self._chain_id_checked = False
        self._contracts: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def check_chain_id(self) -> None:
        """Once per adapter: a node answering for another chain must never get our signatures."""
        if not self._chain_id_checked:
            actual = self.w3.eth.chain_id
            if actual != self.config.chain_id:
                raise WrongChain(f"{self.name}: the node at the configured RPC URL is chain {actual}, "
                                 f"not {self.config.chain_id}")
            self._chain_id_checked = True

    def token(self, address: str):
        # One contract object per token and adapter: web3 builds every function and event from the ABI
        # when a contract is made, which cost more than the call it was made for.
        address = to_checksum_address(address)
        contract = self._contracts.get(address)
        if contract is None:
            contract = self._contracts[address] = self.w3.eth.contract(address=address, abi=token_artifact()["abi"])
        return contract

    # --- fees, nonces, building and signing ---------------------------------------------------

    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): the node's suggested tip and twice the base fee (room
        for six full blocks of increases), each held under the configured caps."""
        base_fee = int(self.w3.eth.get_block("latest")["baseFeePerGas"])
        tip = min(int(self.w3.eth.max_priority_fee), self.config.max_priority_fee_per_gas_wei)
        if base_fee + tip > self.config.max_fee_per_gas_wei:
            raise FeesAboveCap(f"{self.name}: base fee {base_fee} + tip {tip} wei exceeds the cap "
                               f"{self.config.max_fee_per_gas_wei}")
        return min(2 * base_fee + tip, self.config.max_fee_per_gas_wei), tip

    def pending_nonce(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(to_checksum_address(address), "pending"))

    def sign(self, *, signer: Signer, to: str | None, data: str, nonce: int, gas: int | None = None,
             fees: tuple[int, int] | None = None) -> SignedTx:
        """Sign an EIP-1559 transaction. `gas` None: estimated (which also refuses, before anything is
        signed, a call the chain would revert now); pass it to sign regardless."""
        self.check_chain_id()
        max_fee, tip = fees or self.fees()
        tx: dict[str, Any] = {"type": 2, "chainId": self.config.chain_id, "nonce": nonce, "value": 0, "data": data,
                              "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        if gas is None:
            estimate = {"from": signer.address, "data": data, "value": 0}
            if to is not None:
                estimate["to"] = tx["to"]
            gas = int(self.w3.eth.estimate_gas(estimate) * GAS_MARGIN)
        tx["gas"] = gas
        raw = bytes(signer.sign_transaction(tx))
        return SignedTx(raw=raw, tx_hash=_hex(keccak(raw)), nonce=nonce, sender=signer.address)

    def sign_call(self, *, signer: Signer, token: str, function: str, args: Sequence, nonce: int,
                  gas: int | None = None) -> SignedTx:
        data = self.token(token).encode_abi(function, args=list(args))
        return self.sign(signer=signer, to=token, data=data, nonce=nonce, gas=gas)

    def sign_deploy(self, *, signer: Signer, name: str, symbol: str, decimals: int, admin: str, minter: str,
                    burner: str, pauser: str, vault: str, nonce: int) -> SignedTx:
        artifact = token_artifact()
        constructor = next(item for item in artifact["abi"] if item["type"] == "constructor")
        args = [name, symbol, decimals, *(to_checksum_address(a) for a in (admin, minter, burner, pauser, vault))]
        encoded = self.w3.codec.encode([i["type"] for i in constructor["inputs"]], args)
        return self.sign(signer=signer, to=None, data=artifact["bytecode"] + encoded.hex(), nonce=nonce)

    def sign_mint_batch(self, *, signer: Signer, token: str, mints: Sequence[Mint], nonce: int,
                        gas: int | None = None) -> SignedTx:
        if not 1 <= len(mints) <= self.config.batch_size:
            raise ValueError(f"a batch holds 1..{self.config.batch_size} mints, not {len(mints)}")
        # ABI-encoded directly (selector + the codec): web3's contract encoder normalises every argument
        # through its formatters and cost more CPU than the rest of a 100-mint batch together.
        data = MINT_BATCH_SELECTOR + self.w3.codec.encode(["address[]", "uint256[]", "bytes32[]"], [
            [to_checksum_address(m.to) for m in mints], [int(m.amount_base_units) for m in mints],
            [bytes(m.ref) for m in mints]]).hex()
        return self.sign(signer=signer, to=token, data=data, nonce=nonce, gas=gas)

    def feed(self, address: str):
        return self.w3.eth.contract(address=to_checksum_address(address), abi=feed_artifact()["abi"])

    def sign_feed_submit(self, *, signer: Signer, feed: str, reserve_nano: int, supply_nano: int, ref: bytes,
                         nonce: int, gas: int | None = None) -> SignedTx:
        """One round of a ReserveFeed: the reserve and the shares the supply needs (nano-shares)."""
        data = self.feed(feed).encode_abi("submit", args=[int(reserve_nano), int(supply_nano), bytes(ref)])
        return self.sign(signer=signer, to=feed, data=data, nonce=nonce, gas=gas)

    def sign_burn_from_vault(self, *, signer: Signer, token: str, amount_base_units: int, ref: bytes, nonce: int,
                             gas: int | None = None) -> SignedTx:
        return self.sign_call(signer=signer, token=token, function="burnFromVault",
                              args=[int(amount_base_units), bytes(ref)], nonce=nonce, gas=gas)

    def stuck(self, raw: bytes) -> bool:
        """A pending transaction that cannot be included now: its fee cap is below the base fee."""
        max_fee = int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["maxFeePerGas"])
        return max_fee < int(self.w3.eth.get_block("latest")["baseFeePerGas"])

    def sign_replacement(self, *, signer: Signer, raw: bytes) -> SignedTx | None:
        """The same transaction (nonce, recipient, data, gas) with higher fees, to replace a stuck one:
        each fee at least REPLACEMENT_BUMP above the old (what nodes ask of a replacement) and at least
        what `fees()` suggests now. None if that would pass the configured caps: it waits instead."""
        old = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        if to_checksum_address(Account.recover_transaction(raw)) != to_checksum_address(signer.address):
            raise ValueError("a replacement is signed by the signer of the transaction it replaces")
        try:
            max_fee, tip = self.fees()
        except FeesAboveCap:
            return None
        bumped_tip = max(tip, -(-int(old["maxPriorityFeePerGas"]) * REPLACEMENT_BUMP_NUM // REPLACEMENT_BUMP_DEN))
        bumped_max = max(max_fee, -(-int(old["maxFeePerGas"]) * REPLACEMENT_BUMP_NUM // REPLACEMENT_BUMP_DEN))
        if bumped_max > self.config.max_fee_per_gas_wei or bumped_tip > self.config.max_priority_fee_per_gas_wei:
            return None
        tx: dict[str, Any] = {"type": 2, "chainId": self.config.chain_id, "nonce": int(old["nonce"]), "value": 0,
                              "data": _hex(old["data"]), "gas": int(old["gas"]), "maxFeePerGas": bumped_max,
                              "maxPriorityFeePerGas": min(bumped_tip, bumped_max)}
        if old.get("to"):
            tx["to"] = to_checksum_address(old["to"])
        replacement = bytes(signer.sign_transaction(tx))
        return SignedTx(raw=replacement, tx_hash=_hex(keccak(replacement)), nonce=int(old["nonce"]),
                        sender=signer.address)

    def sign_set_multiplier(self, *, signer: Signer, token: str, multiplier_scaled: int, ref: bytes, nonce: int,
                            gas: int | None = None) -> SignedTx:
        return self.sign_call(signer=signer, token=token, function="setMultiplier",
                              args=[int(multiplier_scaled), bytes(ref)], nonce=nonce, gas=gas)

    # --- broadcasting and following -----------------------------------------------------------

    def send_raw(self, signed: SignedTx | bytes) -> str:
        """Broadcast; idempotent. A transaction the node already has (pending or mined) is not an error:
        a retry after a crash re-sends what it recorded, and that must be harmless."""
        raw = signed.raw if isinstance(signed, SignedTx) else bytes(signed)
        tx_hash = _hex(keccak(raw))
        try:
            return _hex(self.w3.eth.send_raw_transaction(raw))
        except Web3RPCError as exc:
            if self.transaction_known(tx_hash):
                return tx_hash
            raise ChainError(f"{self.name}: broadcast of {tx_hash} refused: {exc}") from None

    def transaction_known(self, tx_hash: str) -> bool:
        try:
            return self.w3.eth.get_transaction(tx_hash) is not None
        except TransactionNotFound:
            return False

    def receipt(self, tx_hash: str) -> Receipt | None:
        # The raw JSON-RPC answer, not w3.eth.get_transaction_receipt: web3 formats every log of the
        # receipt (a 100-mint batch has 200), which cost more than the rest of following the batch.
        response = self.w3.provider.make_request("eth_getTransactionReceipt", [tx_hash])
        if response.get("error"):
            raise ChainError(f"{self.name}: receipt of {tx_hash}: {response['error']}")
        raw = response.get("result")
        if raw is None or raw.get("blockNumber") is None:
            return None
        head = self.w3.eth.block_number
        block_number = int(raw["blockNumber"], 16)
        return Receipt(tx_hash=_hex(raw["transactionHash"]), succeeded=int(raw["status"], 16) == 1,
                       block_number=block_number, block_hash=_hex(raw["blockHash"]), gas_used=int(raw["gasUsed"], 16),
                       contract_address=raw.get("contractAddress") and to_checksum_address(raw["contractAddress"]),
                       confirmations=head - block_number + 1)

    def is_final(self, receipt: Receipt) -> bool:
        """Deep enough to act on: the configured depth of blocks on top of the including one (depth 0:
        mined is enough)."""
        return receipt.confirmations - 1 >= self.config.confirmations

    def wait_for_receipt(self, tx_hash: str, *, timeout_s: float = 60, poll_s: float = 0.05) -> Receipt:
        deadline = time.monotonic() + timeout_s
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ChainError(f"{self.name}: no receipt for {tx_hash} within {timeout_s} s")
            time.sleep(poll_s)

    # --- reads ----------------------------------------------------------------------------------

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        """The canonical hash at `number` now, or None if the chain is not that long (any more)."""
        try:
            block = self.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        return _hex(block["hash"]) if block else None

    def total_supply(self, token: str, *, block: int | str = "latest") -> int:
        return int(self.token(token).functions.totalSupply().call(block_identifier=block))

    def balance_of(self, token: str, holder: str, *, block: int | str = "latest") -> int:
        return int(self.token(token).functions.balanceOf(to_checksum_address(holder)).call(block_identifier=block))

    def paused(self, token: str) -> bool:
        return bool(self.token(token).functions.paused().call())

    def call_reverts(self, *, sender: str, token: str, function: str, args: Sequence) -> str | None:
        """Why the chain would refuse this call now (its revert reason), or None if it would not."""
        contract = self.token(token)
        try:
            self.w3.eth.call({"from": to_checksum_address(sender), "to": contract.address,
                              "data": contract.encode_abi(function, args=list(args))})
        except ContractLogicError as exc:
            return str(exc)[:300] or "reverted"
        return None

    def nonce_taken_by_another(self, raw: bytes) -> bool:
        """True if the chain has mined another transaction at this signed transaction's nonce while it
        knows nothing of this one: it can never land, so re-broadcasting it is pointless."""
        tx_hash = _hex(keccak(raw))
        if self.transaction_known(tx_hash):
            return False
        sender = Account.recover_transaction(raw)
        nonce = int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["nonce"])
        return int(self.w3.eth.get_transaction_count(sender, "latest")) > nonce

    def ref_minted(self, token: str, ref: bytes, *, block: int | str = "latest") -> bool:
        return bool(self.token(token).functions.mintedRefs(bytes(ref)).call(block_identifier=block))

    def ref_burned(self, token: str, ref: bytes, *, block: int | str = "latest") -> bool:
        return bool(self.token(token).functions.burnedRefs(bytes(ref)).call(block_identifier=block))

    def ref_record(self, token: str, ref: bytes, *, kind: str, from_block: int = 0) -> RefRecord | None:
        """The event that minted (`kind` "mint"), burned ("burn"), set the multiplier ("multiplier") or
        submitted a reserve round ("reserve", `token` being the feed) for `ref`, found by its indexed topic; None if there is none (the contract refuses a reference twice,
        so there is at most one). A multiplier record's holder is the token and its amount 0, as the
        operation that asked for it records them (its value is the product's multiplier when signed)."""
        contract = self.feed(token) if kind == "reserve" else self.token(token)
        event = getattr(contract.events, {"mint": "Minted", "burn": "BurnedFromVault", "multiplier": "MultiplierUpdated",
                                          "reserve": "ReserveSubmitted"}[kind])
        logs = event.get_logs(from_block=from_block, to_block="latest", argument_filters={"ref": bytes(ref)})
        if not logs:
            return None
        log = logs[0]
        if kind == "multiplier":
            holder, amount = token, 0
        elif kind == "reserve":
            holder, amount = token, log["args"]["reserve"]
        else:
            holder, amount = (log["args"]["to"] if kind == "mint" else log["args"]["vault"]), log["args"]["amount"]
        return RefRecord(tx_hash=_hex(log["transactionHash"]), block_number=int(log["blockNumber"]),
                         holder=to_checksum_address(holder), amount_base_units=int(amount))

    def ref_done(self, token: str, ref: bytes, *, kind: str, block: int | str = "latest") -> bool:
        """Whether the contract records `ref` as done for an operation of `kind` (it refuses it again)."""
        if kind == "reserve":  # `token` is the product's feed
            return bool(self.feed(token).functions.refSubmitted(bytes(ref)).call(block_identifier=block))
        check = {"mint": self.ref_minted, "burn": self.ref_burned, "multiplier": self.ref_multiplier_applied}[kind]
        return check(token, ref, block=block)

    def ref_multiplier_applied(self, token: str, ref: bytes, *, block: int | str = "latest") -> bool:
        return bool(self.token(token).functions.multiplierRefs(bytes(ref)).call(block_identifier=block))

    def multiplier_scaled(self, token: str, *, block: int | str = "latest") -> int:
        """The token's published multiplier, MULTIPLIER_DECIMALS (18) fixed point."""
        return int(self.token(token).functions.multiplier().call(block_identifier=block))

    def redeemed_logs(self, token: str, *, from_block: int, to_block: int) -> list[RedeemedLog]:
        """Every `Redeemed` log of `token` in [from_block, to_block] as the node has them now, oldest first."""
        if to_block < from_block:
            return []
        contract = self.token(token)
        logs = contract.events.Redeemed.get_logs(from_block=from_block, to_block=to_block)
        found = [RedeemedLog(token=contract.address, holder=to_checksum_address(log["args"]["holder"]),
                             amount_base_units=int(log["args"]["amount"]), ref=bytes(log["args"]["ref"]),
                             tx_hash=_hex(log["transactionHash"]), log_index=int(log["logIndex"]),
                             block_number=int(log["blockNumber"]), block_hash=_hex(log["blockHash"]))
                 for log in logs]
        return sorted(found, key=lambda log: (log.block_number, log.log_index))


@functools.cache
def _cached_chain(config: EvmChainConfig) -> EvmChain:
    return EvmChain(config)


def evm_chain(name: str) -> EvmChain:
    """The adapter of a configured chain, one per process and configuration (web3 providers hold a
    connection)."""
    from chains.config import evm_chain_config

    return _cached_chain(evm_chain_config(name))
