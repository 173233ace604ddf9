"""The state of the local Solana node: a LiteSVM, a slot clock, recent blockhashes, the signature
history, and a journal in `.data/solana/` that a restart replays.

LiteSVM executes transactions at once and keeps a single "latest" blockhash; a cluster keeps every
blockhash of the last 150 blocks valid and refuses a transaction whose blockhash is older. The
executor's exactly-once rule depends on that (a transaction not landed by its last valid block height
never will), so the node checks blockhashes itself (LiteSVM's check is turned off) against a table of
one blockhash per slot, each valid for `valid_blocks` blocks. Slots advance on a timer; the block
height equals the slot (no skipped slots here). A transaction lands in the current slot and is
`confirmed` at once (one node, no forks), `finalized` once `finality_slots` slots are on top of it.

Persistence: every account a transaction (or airdrop) changed is written to the journal after it ran,
with the transaction's record, before the answer goes out; slots and their blockhashes too. A start
replays the journal into a fresh LiteSVM (accounts set as they were, not re-executed) and compacts it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from solders.account import Account
from solders.clock import Clock
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

TOKEN_PROGRAMS = {"TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"}
MEMO_PROGRAMS = {"MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr", "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVrDxQDE5JD"}
TOKEN_ACCOUNT_LEN = 165
ACCOUNT_TYPE_ACCOUNT = 2  # Token-2022's byte after the 165-byte base of an account with extensions
SIGNATURE_FEE = 5000


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class TxRecord:
    signature: str
    slot: int
    block_time: int
    tx: str  # base64 wire bytes
    keys: list[str]
    fee: int
    logs: list[str]
    units: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token: list[dict]
    post_token: list[dict]
    memos: list[str] = field(default_factory=list)


def token_account_fields(account: Account | None) -> tuple[str, str, int] | None:
    """(mint, owner, amount) of an SPL token account, or None if it is not one."""
    if account is None or str(account.owner) not in TOKEN_PROGRAMS:
        return None
    data = bytes(account.data)
    if len(data) < TOKEN_ACCOUNT_LEN or (len(data) > TOKEN_ACCOUNT_LEN and data[TOKEN_ACCOUNT_LEN] != ACCOUNT_TYPE_ACCOUNT):
        return None
    return str(Pubkey(data[0:32])), str(Pubkey(data[32:64])), int.from_bytes(data[64:72], "little")


def mint_fields(account: Account | None) -> tuple[int, int] | None:
    """(supply, decimals) of an SPL mint, or None if it is not one."""
    if account is None or str(account.owner) not in TOKEN_PROGRAMS:
        return None
    data = bytes(account.data)
    if len(data) < 82 or (len(data) > 82 and len(data) > TOKEN_ACCOUNT_LEN and data[TOKEN_ACCOUNT_LEN] != 1):
        return None
    return int.from_bytes(data[36:44], "little"), data[44]


def ui_amount(amount: int, decimals: int) -> dict:
    text = str(amount).rjust(decimals + 1, "0")
    whole, frac = (text[:-decimals], text[-decimals:].rstrip("0")) if decimals else (text, "")
    ui_string = f"{whole}.{frac}" if frac else whole
    # uiAmount is a float in the RPC's format; nothing here reads it, amounts are the integer strings.
    return {"amount": str(amount), "decimals": decimals, "uiAmount": float(ui_string), "uiAmountString": ui_string}


def _account_json(account: Account) -> dict:
    return {"lamports": account.lamports, "data": base64.b64encode(bytes(account.data)).decode(),
            "owner": str(account.owner), "executable": account.executable, "rent_epoch": account.rent_epoch}


def _error_json(err) -> object:
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


class LocalSolana:
    def __init__(self, state_dir: Path, *, slot_s: float = 0.4, valid_blocks: int = 150,
                 finality_slots: int = 32) -> None:
        self.state_dir = Path(state_dir)
        self.slot_s, self.valid_blocks, self.finality_slots = slot_s, valid_blocks, finality_slots
        self.lock = threading.RLock()
        self.svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
        self.slot = 0
        self.blockhashes: dict[str, int] = {}  # blockhash -> last valid block height
        self.latest_hash = ""
        self.history: dict[str, TxRecord] = {}
        self.by_address: dict[str, list[str]] = {}
        self.genesis_hash = ""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._load()
        self._stop = threading.Event()

    # --- persistence --------------------------------------------------------------------------

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.jsonl"

    def _load(self) -> None:
        accounts: dict[str, dict] = {}
        slots: list[dict] = []
        if self.journal_path.exists():
            with open(self.journal_path, encoding="utf-8") as journal:
                for line in journal:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a line cut short by a kill: everything after it was never acknowledged
                    kind = entry.pop("t")
                    if kind == "a":
                        accounts[entry["key"]] = entry
                    elif kind == "x":
                        self._index(TxRecord(**entry))
                    elif kind == "s":
                        slots.append(entry)
                    elif kind == "g":
                        self.genesis_hash = entry["hash"]
        for key, entry in accounts.items():
            self.svm.set_account(Pubkey.from_string(key), Account(
                lamports=entry["lamports"], data=base64.b64decode(entry["data"]), owner=Pubkey.from_string(entry["owner"]),
                executable=entry["executable"], rent_epoch=entry["rent_epoch"]))
        for entry in slots:
            self.slot = max(self.slot, entry["slot"])
            self.blockhashes[entry["hash"]] = entry["last_valid"]
        if not self.genesis_hash:
            self.genesis_hash = str(self.svm.latest_blockhash())
        # Compact: the latest state of each account, the history and the recent blockhashes, then go on.
        recent = [s for s in slots if s["last_valid"] >= self.slot]
        tmp = self.journal_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(json.dumps({"t": "g", "hash": self.genesis_hash}) + "\n")
            for entry in accounts.values():
                out.write(json.dumps({"t": "a", **entry}) + "\n")
            for record in self.history.values():
                out.write(json.dumps({"t": "x", **asdict(record)}) + "\n")
            for entry in recent:
                out.write(json.dumps({"t": "s", **entry}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.journal_path)
        self.journal = open(self.journal_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the node's life)
        self._advance()

    def _write(self, *entries: dict) -> None:
        self.journal.write("".join(json.dumps(entry) + "\n" for entry in entries))
        self.journal.flush()

    def _index(self, record: TxRecord) -> None:
        self.history[record.signature] = record
        for key in record.keys:
            self.by_address.setdefault(key, []).append(record.signature)

    # --- the clock ------------------------------------------------------------------------------

    def _advance(self) -> None:
        """One slot on: a new blockhash, valid for `valid_blocks` blocks from here."""
        self.slot += 1
        self.svm.warp_to_slot(self.slot)
        clock = self.svm.get_clock()
        self.svm.set_clock(Clock(slot=self.slot, epoch_start_timestamp=clock.epoch_start_timestamp, epoch=clock.epoch,
                                 leader_schedule_epoch=clock.leader_schedule_epoch, unix_timestamp=int(time.time())))
        self.svm.expire_blockhash()
        self.latest_hash = str(self.svm.latest_blockhash())
        last_valid = self.slot + self.valid_blocks
        self.blockhashes[self.latest_hash] = last_valid
        for stale in [h for h, valid in self.blockhashes.items() if valid < self.slot - self.valid_blocks]:
            del self.blockhashes[stale]
        self._write({"t": "s", "slot": self.slot, "hash": self.latest_hash, "last_valid": last_valid})

    def run_clock(self) -> None:
        while not self._stop.wait(self.slot_s):
            with self.lock:
                self._advance()

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            self.journal.close()

    # --- reads -----------------------------------------------------------------------------------

    def height(self, commitment: str | None = None) -> int:
        return max(self.slot - self.finality_slots, 0) if commitment == "finalized" else self.slot

    def status(self, record: TxRecord) -> str:
        return "finalized" if self.slot - record.slot >= self.finality_slots else "confirmed"

    def visible(self, record: TxRecord, commitment: str | None) -> bool:
        return commitment != "finalized" or self.status(record) == "finalized"

    def account(self, key: str) -> Account | None:
        account = self.svm.get_account(Pubkey.from_string(key))
        return account if account is not None and (account.lamports or account.executable) else None

    # --- writes ----------------------------------------------------------------------------------

    def _token_balances(self, keys: list[str], accounts: list[Account | None]) -> list[dict]:
        balances = []
        for index, account in enumerate(accounts):
            fields = token_account_fields(account)
            if fields is None:
                continue
            mint, owner, amount = fields
            minted = mint_fields(self.account(mint))
            balances.append({"accountIndex": index, "mint": mint, "owner": owner, "programId": str(account.owner),
                             "uiTokenAmount": ui_amount(amount, minted[1] if minted else 0)})
        return balances

    def send(self, wire: bytes) -> str:
        try:
            tx = VersionedTransaction.from_bytes(wire)
        except Exception as exc:
            raise RpcError(-32602, f"invalid transaction: {exc}") from None
        signature = str(tx.signatures[0])
        with self.lock:
            if signature in self.history:
                return signature  # a re-send of what landed: harmless, as on a cluster
            recent = str(tx.message.recent_blockhash)
            if self.blockhashes.get(recent, -1) < self.slot:
                raise RpcError(-32002, "Transaction simulation failed: Blockhash not found",
                               {"err": "BlockhashNotFound", "logs": [], "accounts": None, "unitsConsumed": 0})
            keys = [str(k) for k in tx.message.account_keys]
            pre = [self.svm.get_account(k) for k in tx.message.account_keys]
            pre_token = self._token_balances(keys, pre)
            result = self.svm.send_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                meta = result.meta()
                logs = list(meta.logs())
                raise RpcError(-32002, "Transaction simulation failed: " + json.dumps(_error_json(result.err())),
                               {"err": _error_json(result.err()), "logs": logs, "accounts": None,
                                "unitsConsumed": meta.compute_units_consumed()})
            post = [self.svm.get_account(k) for k in tx.message.account_keys]
            memos = [bytes(ix.data).decode("utf-8", "replace") for ix in tx.message.instructions
                     if keys[ix.program_id_index] in MEMO_PROGRAMS]
            record = TxRecord(
                signature=signature, slot=self.slot, block_time=int(time.time()), tx=base64.b64encode(wire).decode(),
                keys=keys, fee=result.fee(), logs=list(result.logs()), units=result.compute_units_consumed(),
                pre_balances=[a.lamports if a else 0 for a in pre], post_balances=[a.lamports if a else 0 for a in post],
                pre_token=pre_token, post_token=self._token_balances(keys, post), memos=memos)
            closed = Account(lamports=0, data=b"", owner=Pubkey.default())
            changed = [{"t": "a", "key": key, **_account_json(after or closed)}
                       for key, before, after in zip(keys, pre, post, strict=True)
                       if after != before and not (after is not None and after.executable)]
            self._write(*changed, {"t": "x", **asdict(record)})
            self._index(record)
            return signature

    def simulate(self, wire: bytes) -> dict:
        tx = VersionedTransaction.from_bytes(wire)
        with self.lock:
            result = self.svm.simulate_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                meta, err = result.meta(), _error_json(result.err())
            else:
                meta, err = result.meta(), None
            return {"err": err, "logs": list(meta.logs()), "accounts": None,
                    "unitsConsumed": meta.compute_units_consumed(), "returnData": None}

    def airdrop(self, key: str, lamports: int) -> str:
        with self.lock:
            pubkey = Pubkey.from_string(key)
            before = self.svm.get_balance(pubkey) or 0
            result = self.svm.airdrop(pubkey, lamports)
            if isinstance(result, FailedTransactionMetadata):
                raise RpcError(-32603, f"airdrop failed: {_error_json(result.err())}")
            signature = str(result.signature())
            account = self.svm.get_account(pubkey)
            record = TxRecord(signature=signature, slot=self.slot, block_time=int(time.time()), tx="", keys=[key],
                              fee=0, logs=list(result.logs()), units=0, pre_balances=[before],
                              post_balances=[account.lamports], pre_token=[], post_token=[])
            self._write({"t": "a", "key": key, **_account_json(account)}, {"t": "x", **asdict(record)})
            self._index(record)
            return signature
