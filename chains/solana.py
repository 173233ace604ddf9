"""The Solana adapter: what the issuer does with SPL Token-2022, over JSON-RPC only (the `solana`
client and solders types), so the same code runs against the local RPC, devnet or mainnet
(architecture section 5).

Per product one Token-2022 mint: the operator key is its mint authority, the admin key its freeze
authority and the authority of its metadata (name, symbol, URI, in the mint itself) and of its
ScaledUiAmount multiplier (shares per token, for wallets). Mints are `mint_to_checked` into the
holder's associated token account (created idempotently in the same transaction), several per
transaction, each followed by a Memo with its reference. Burns are `burn_checked` from the issuer's
redemption token account (the vault key's ATA), with a Memo too.

Like chains.evm it builds and signs but never decides when to send: the executor records the signed
transaction, its signature and its last valid block height first. The `solana` package (0.41) offers
only an asyncio client; the adapter runs it on a private event loop thread so callers stay synchronous.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import TOKEN_2022_PROGRAM_ID
from spl.token.instructions import (
    burn_checked,
    create_idempotent_associated_token_account,
    get_associated_token_address,
    mint_to_checked,
)
from spl.token.models import BurnCheckedParams, MintToCheckedParams

from chains.config import SolanaChainConfig
from chains.signers import SolanaSigner, solana_signer_for

MAX_TX_BYTES = 1232
MINT_BASE_LEN = 165 + 1  # the account-sized base plus the account-type byte, before extensions
EXT_METADATA_POINTER = (4 + 64)
EXT_SCALED_UI_AMOUNT = (4 + 56)
# Token-2022 instruction tags (spl-token-2022's TokenInstruction enum) the `spl` package does not build.
IX_INITIALIZE_MINT2 = 20
IX_METADATA_POINTER = 39
IX_SCALED_UI_AMOUNT = 43
EXT_TYPE_SCALED_UI_AMOUNT = 25  # spl-token-2022 ExtensionType::ScaledUiAmount
METADATA_INITIALIZE = hashlib.sha256(b"spl_token_metadata_interface:initialize_account").digest()[:8]


class SolanaError(RuntimeError):
    """The cluster refused or could not answer; the message never carries key material."""


@dataclass(frozen=True)
class SignedSolanaTx:
    wire: bytes
    signature: str
    last_valid_block_height: int

    @property
    def wire_b64(self) -> str:
        return base64.b64encode(self.wire).decode()


@dataclass(frozen=True)
class SolanaMint:
    owner: str  # the holder's wallet (its ATA receives the tokens)
    amount_base_units: int
    reference: str


@dataclass(frozen=True)
class SignatureStatus:
    slot: int
    failed: bool
    commitment: str | None  # processed, confirmed or finalized


@dataclass(frozen=True)
class TokenTransfer:
    """Tokens that arrived in a watched token account in one transaction, and the memo it carried."""

    signature: str
    slot: int
    amount_base_units: int
    source_owner: str
    memos: tuple[str, ...]


def _borsh_str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def multiplier_f64(multiplier: Decimal) -> float:
    """ScaledUiAmount keeps an IEEE double (a display factor for wallets, never used for an amount here):
    refuse a multiplier the double cannot carry exactly to 9 decimals."""
    value = float(multiplier)
    if abs(Decimal(repr(value)) - multiplier) > Decimal("1e-9"):
        raise ValueError(f"multiplier {multiplier} does not fit the on-chain double")
    return value


class _Loop:
    """One event loop per process on a daemon thread (the client is asyncio-only)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="solana-rpc").start()

    def run(self, coro, timeout_s: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)


class SolanaChain:
    def __init__(self, config: SolanaChainConfig) -> None:
        self.config = config
        self._loop = _Loop()
        self.client = self._loop.run(self._client())

    async def _client(self) -> AsyncClient:
        return AsyncClient(self.config.rpc_url, commitment=Commitment(self.config.commitment), timeout=30)

    @property
    def name(self) -> str:
        return self.config.name

    def _rpc(self, coro):
        try:
            return self._loop.run(coro)
        except (RPCException, SolanaRpcException) as exc:
            raise SolanaError(f"{self.name}: {str(exc)[:500]}") from None

    # --- building and signing ------------------------------------------------------------------

    def latest_blockhash(self):
        value = self._rpc(self.client.get_latest_blockhash(Commitment("confirmed"))).value
        return value.blockhash, value.last_valid_block_height

    def sign(self, instructions: Sequence[Instruction], *, payer: SolanaSigner, signers: Sequence = (),
             recent: tuple | None = None) -> SignedSolanaTx:
        """Sign with a fresh blockhash, or `recent` (a `latest_blockhash()` answer the caller just had, for
        several transactions signed together); `payer` pays the fee and signs first (its signature is the
        transaction's id). Other signers: SolanaSigner or solders Keypair (a new mint's)."""
        blockhash, last_valid = recent or self.latest_blockhash()
        message = Message.new_with_blockhash(list(instructions), payer.pubkey(), blockhash)
        by_key = {str(s.pubkey()): s for s in (payer, *signers)}
        signatures = [by_key[str(key)].sign_message(bytes(message)) for key in message.account_keys[:message.header.num_required_signatures]]
        tx = Transaction.populate(message, signatures)
        wire = bytes(tx)
        if len(wire) > MAX_TX_BYTES:
            raise ValueError(f"the transaction is {len(wire)} bytes, over Solana's {MAX_TX_BYTES}")
        return SignedSolanaTx(wire=wire, signature=str(tx.signatures[0]), last_valid_block_height=last_valid)

    def ata(self, owner: str | Pubkey, mint: str | Pubkey) -> Pubkey:
        return get_associated_token_address(Pubkey.from_string(str(owner)), Pubkey.from_string(str(mint)),
                                            TOKEN_2022_PROGRAM_ID)

    def mint_batch_instructions(self, *, mint: str, decimals: int, mints: Sequence[SolanaMint],
                                authority: Pubkey, payer: Pubkey) -> list[Instruction]:
        mint_key = Pubkey.from_string(mint)
        instructions = []
        for item in mints:
            owner = Pubkey.from_string(item.owner)
            destination = self.ata(owner, mint_key)
            instructions.append(create_idempotent_associated_token_account(payer, owner, mint_key, TOKEN_2022_PROGRAM_ID))
            instructions.append(mint_to_checked(MintToCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID, mint=mint_key, dest=destination, mint_authority=authority,
                amount=int(item.amount_base_units), decimals=decimals)))
            instructions.append(self.memo(item.reference, signer=authority))
        return instructions

    def memo(self, text: str, *, signer: Pubkey) -> Instruction:
        return create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=signer, message=text.encode("utf-8")))

    def sign_mint_batch(self, *, mint: str, decimals: int, mints: Sequence[SolanaMint], recent: tuple | None = None
                        ) -> SignedSolanaTx:
        if not 1 <= len(mints) <= self.config.batch_size:
            raise ValueError(f"a batch holds 1..{self.config.batch_size} mints, not {len(mints)}")
        operator = solana_signer_for("operator")
        return self.sign(self.mint_batch_instructions(mint=mint, decimals=decimals, mints=mints,
                                                      authority=operator.pubkey(), payer=operator.pubkey()),
                         payer=operator, recent=recent)

    def sign_burn(self, *, mint: str, decimals: int, amount_base_units: int, reference: str) -> SignedSolanaTx:
        operator, vault = solana_signer_for("operator"), solana_signer_for("vault")
        mint_key = Pubkey.from_string(mint)
        return self.sign([
            burn_checked(BurnCheckedParams(program_id=TOKEN_2022_PROGRAM_ID, mint=mint_key,
                                           account=self.ata(vault.pubkey(), mint_key), owner=vault.pubkey(),
                                           amount=int(amount_base_units), decimals=decimals)),
            self.memo(reference, signer=vault.pubkey()),
        ], payer=operator, signers=[vault])

    def sign_multiplier(self, *, mint: str, multiplier: Decimal, reference: str) -> SignedSolanaTx:
        operator, admin = solana_signer_for("operator"), solana_signer_for("admin")
        update = Instruction(TOKEN_2022_PROGRAM_ID, bytes([IX_SCALED_UI_AMOUNT, 1])
                             + struct.pack("<d", multiplier_f64(multiplier)) + struct.pack("<q", 0),
                             [AccountMeta(Pubkey.from_string(mint), False, True), AccountMeta(admin.pubkey(), True, False)])
        return self.sign([update, self.memo(reference, signer=admin.pubkey())], payer=operator, signers=[admin])

    def create_mint(self, *, decimals: int, name: str, symbol: str, uri: str, multiplier: Decimal = Decimal(1)
                    ) -> tuple[str, SignedSolanaTx]:
        """A new Token-2022 mint with its metadata and multiplier, and the redemption vault's token account
        for it: (mint address, signed transaction). The mint's own key signs once, here, and is dropped."""
        if not 0 <= decimals <= 18:
            raise ValueError("decimals must be within 0..18")
        operator, admin, vault = (solana_signer_for(role) for role in ("operator", "admin", "vault"))
        mint = Keypair()
        space = MINT_BASE_LEN + EXT_METADATA_POINTER + EXT_SCALED_UI_AMOUNT
        metadata_len = 4 + 32 + 32 + len(_borsh_str(name)) + len(_borsh_str(symbol)) + len(_borsh_str(uri)) + 4
        lamports = self._rpc(self.client.get_minimum_balance_for_rent_exemption(space + metadata_len)).value
        key, admin_key = mint.pubkey(), admin.pubkey()
        writable = [AccountMeta(key, False, True)]
        instructions = [
            create_account(CreateAccountParams(from_pubkey=operator.pubkey(), to_pubkey=key, lamports=lamports,
                                               space=space, owner=TOKEN_2022_PROGRAM_ID)),
            Instruction(TOKEN_2022_PROGRAM_ID, bytes([IX_METADATA_POINTER, 0]) + bytes(admin_key) + bytes(key), writable),
            Instruction(TOKEN_2022_PROGRAM_ID, bytes([IX_SCALED_UI_AMOUNT, 0]) + bytes(admin_key)
                        + struct.pack("<d", multiplier_f64(multiplier)), writable),
            Instruction(TOKEN_2022_PROGRAM_ID, bytes([IX_INITIALIZE_MINT2, decimals]) + bytes(operator.pubkey())
                        + b"\x01" + bytes(admin_key), writable),
            Instruction(TOKEN_2022_PROGRAM_ID, METADATA_INITIALIZE + _borsh_str(name) + _borsh_str(symbol) + _borsh_str(uri),
                        [AccountMeta(key, False, True), AccountMeta(admin_key, False, False),
                         AccountMeta(key, False, False), AccountMeta(operator.pubkey(), True, False)]),
            create_idempotent_associated_token_account(operator.pubkey(), vault.pubkey(), key, TOKEN_2022_PROGRAM_ID),
        ]
        return str(key), self.sign(instructions, payer=operator, signers=[mint])

    # --- sending and following -------------------------------------------------------------------

    def send(self, wire: bytes) -> str:
        """Broadcast without preflight; idempotent (a signature the cluster has is not an error)."""
        opts = TxOpts(skip_preflight=True, skip_confirmation=True, max_retries=0)
        try:
            return str(self._rpc(self.client.send_raw_transaction(wire, opts=opts)).value)
        except SolanaError:
            signature = str(Transaction.from_bytes(wire).signatures[0])
            if self.status(signature) is not None:
                return signature
            raise

    def simulate_error(self, wire: bytes) -> str | None:
        """Why the cluster would refuse this transaction now, or None if it would take it."""
        from solders.transaction import VersionedTransaction

        value = self._rpc(self.client.simulate_transaction(VersionedTransaction.from_bytes(wire),
                                                           sig_verify=False)).value
        return None if value.err is None else (str(value.err)[:300] + " " + " | ".join((value.logs or [])[-3:]))[:600]

    def statuses(self, signatures: Sequence[str]) -> dict[str, SignatureStatus | None]:
        found: dict[str, SignatureStatus | None] = {}
        for start in range(0, len(signatures), 256):
            chunk = list(signatures[start:start + 256])
            values = self._rpc(self.client.get_signature_statuses([Signature.from_string(s) for s in chunk],
                                                                   search_transaction_history=True)).value
            for signature, value in zip(chunk, values, strict=True):
                found[signature] = None if value is None else SignatureStatus(
                    slot=value.slot, failed=value.err is not None,
                    commitment=str(value.confirmation_status).rsplit(".", 1)[-1].lower() if value.confirmation_status else None)
        return found

    def status(self, signature: str) -> SignatureStatus | None:
        return self.statuses([signature])[signature]

    def is_final(self, status: SignatureStatus) -> bool:
        order = {"processed": 0, "confirmed": 1, "finalized": 2}
        return order.get(status.commitment or "", -1) >= order[self.config.commitment]

    def block_height(self, commitment: str = "finalized") -> int:
        return int(self._rpc(self.client.get_block_height(Commitment(commitment))).value)

    def wait(self, signature: str, *, timeout_s: float = 60, poll_s: float = 0.1) -> SignatureStatus:
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(signature)
            if status is not None and (status.failed or self.is_final(status)):
                return status
            if time.monotonic() > deadline:
                raise SolanaError(f"{self.name}: {signature} not {self.config.commitment} within {timeout_s} s")
            time.sleep(poll_s)

    def is_local(self) -> bool:
        """The local RPC over LiteSVM (it says so in getVersion), where airdrops fund the operator."""
        version = self._rpc(self.client.get_version()).value
        return "litesvm" in str(version.solana_core)

    def fund(self, owner: Pubkey, *, lamports: int = 100 * 10**9) -> None:
        if self._rpc(self.client.get_balance(owner)).value < lamports // 2:
            self.wait(str(self._rpc(self.client.request_airdrop(owner, lamports)).value))

    # --- reads -----------------------------------------------------------------------------------

    def slot(self) -> int:
        return int(self._rpc(self.client.get_slot(Commitment(self.config.commitment))).value)

    def account_exists(self, address: str) -> bool:
        return self._rpc(self.client.get_account_info(Pubkey.from_string(address))).value is not None

    def supply(self, mint: str) -> tuple[int, int]:
        """(total supply in base units, the slot it was read at)."""
        answer = self._rpc(self.client.get_token_supply(Pubkey.from_string(mint), Commitment(self.config.commitment)))
        return int(answer.value.amount), int(answer.context.slot)

    def extensions(self, mint: str) -> dict[int, bytes]:
        """The mint's Token-2022 extensions, by extension type: the TLV entries after the base."""
        info = self._rpc(self.client.get_account_info(Pubkey.from_string(mint), Commitment(self.config.commitment))).value
        data = bytes(info.data) if info is not None else b""
        found, offset = {}, MINT_BASE_LEN
        while offset + 4 <= len(data):
            kind, length = struct.unpack_from("<HH", data, offset)
            if kind == 0:
                break
            found[kind] = data[offset + 4:offset + 4 + length]
            offset += 4 + length
        return found

    def multiplier(self, mint: str) -> float:
        """The ScaledUiAmount multiplier wallets apply now (the new one once its effective time passed)."""
        import time

        config = self.extensions(mint)[EXT_TYPE_SCALED_UI_AMOUNT]
        current, effective, new = struct.unpack_from("<dqd", config, 32)
        return new if effective <= time.time() else current

    def decimals(self, mint: str) -> int:
        return int(self._rpc(self.client.get_token_supply(Pubkey.from_string(mint))).value.decimals)

    def balance(self, owner: str, mint: str) -> int:
        """Base units in `owner`'s associated token account (0 if it has none)."""
        account = self.ata(owner, mint)
        if not self.account_exists(str(account)):
            return 0
        return int(self._rpc(self.client.get_token_account_balance(account, Commitment(self.config.commitment))).value.amount)

    def transfers_into(self, token_account: str, *, until: str | None = None, limit: int = 1000) -> list[TokenTransfer]:
        """Transactions that raised `token_account`'s balance, at the configured commitment, oldest first
        (newer than the signature `until`)."""
        account = Pubkey.from_string(token_account)
        signatures: list = []
        before = None
        while True:  # newest first, page by page back to `until`, so a burst of deposits is never cut short
            page = self._rpc(self.client.get_signatures_for_address(
                account, before=before, until=Signature.from_string(until) if until else None, limit=limit,
                commitment=Commitment(self.config.commitment))).value
            signatures.extend(page)
            if len(page) < limit:
                break
            before = page[-1].signature
        found = []
        for entry in reversed(signatures):
            if entry.err is not None:
                continue
            transfer = self._transfer(str(entry.signature), token_account)
            if transfer is not None:
                found.append(transfer)
        return found

    def _transfer(self, signature: str, token_account: str) -> TokenTransfer | None:
        answer = self._rpc(self.client.get_transaction(Signature.from_string(signature), encoding="base64",
                                                       commitment=Commitment(self.config.commitment),
                                                       max_supported_transaction_version=0)).value
        if answer is None:
            return None
        meta = answer.transaction.meta
        tx = answer.transaction.transaction
        message = tx.message
        keys = [str(k) for k in message.account_keys]
        if token_account not in keys:
            return None
        index = keys.index(token_account)

        def amounts(balances) -> dict[int, tuple[int, str]]:
            return {b.account_index: (int(b.ui_token_amount.amount), str(b.owner)) for b in (balances or [])}

        pre, post = amounts(meta.pre_token_balances), amounts(meta.post_token_balances)
        delta = post.get(index, (0, ""))[0] - pre.get(index, (0, ""))[0]
        if delta <= 0:
            return None
        sources = [owner for i, (amount, owner) in pre.items() if i != index and post.get(i, (0, ""))[0] < amount]
        memos = tuple(bytes(ix.data).decode("utf-8", "replace") for ix in message.instructions
                      if keys[ix.program_id_index] == str(MEMO_PROGRAM_ID))
        return TokenTransfer(signature=signature, slot=answer.slot, amount_base_units=delta,
                             source_owner=sources[0] if sources else "", memos=memos)


@functools.cache
def _cached_chain(config: SolanaChainConfig, pid: int) -> SolanaChain:
    return SolanaChain(config)


def solana_chain(name: str = "solana") -> SolanaChain:
    """The adapter, one per process (the event loop thread does not survive a fork)."""
    from chains.config import solana_chain_config

    return _cached_chain(solana_chain_config(name), os.getpid())
