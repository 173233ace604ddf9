"""The demo's living history: a few mints and redemptions run end to end on the local chains through the
real worker, then a custodian statement and a reconciliation (`manage.py seed_demo --activity`, which
`make run` starts once the worker and beat are up).

Every step is keyed by a reference (the request's idempotency key, the on-chain `Redeemed` log carrying
the request's reference, the statement's importer), so a run cut off anywhere (Ctrl-C) and started
again carries on where it stopped: a request that exists is not created again, a transfer already on
chain is not sent again, and what the worker was doing it finishes. The market maker's side (sending
the tokens with `redeem`) is done with its own wallet key, as examples/mm_client.py does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from compliance import demo as compliance_demo
from compliance.models import Participant, Wallet
from config.profiles import refuse_in_production
from config.quantities import shares
from custody import demo as custody_demo
from mint_redeem import services
from mint_redeem.models import MintRequest, Redemption

ACTOR = "system:seed_demo"


@dataclass(frozen=True)
class Step:
    reference: str  # the request's idempotency key: how a second run finds what the first did
    kind: str  # mint | redemption
    symbol: str
    chain: str
    quantity: str  # shares
    mode: str  # cash | in_kind
    until: str  # the state this step waits for ("" = do not wait: left for the queues to show)
    wire_received: bool = False  # a cash mint: record its cash as received (the order is then placed)


# In kind, so each runs end to end within seconds (cash mints wait for T+1 settlement, which the
# dashboard shows as the living queue); a redemption follows the mint that gave its tokens.
ACTIVITY = [
    Step("demo-mint-aapl-eth", "mint", "AAPLx", "ethereum", "25", "in_kind", "minted"),
    Step("demo-mint-tsla-base", "mint", "TSLAx", "base", "10", "in_kind", "minted"),
    Step("demo-mint-nvda-eth", "mint", "NVDAx", "ethereum", "40", "in_kind", "minted"),
    Step("demo-mint-spy-base", "mint", "SPYx", "base", "5.5", "in_kind", "minted"),
    Step("demo-redeem-aapl-eth", "redemption", "AAPLx", "ethereum", "2.5", "in_kind", "shares_delivered"),
    Step("demo-redeem-tsla-base", "redemption", "TSLAx", "base", "1.25", "in_kind", "shares_delivered"),
    Step("demo-mint-aapl-sol", "mint", "AAPLx", "solana", "8", "in_kind", "minted"),
    Step("demo-redeem-aapl-sol", "redemption", "AAPLx", "solana", "1.5", "in_kind", "shares_delivered"),
    Step("demo-mint-amzn-eth-cash", "mint", "AMZNx", "ethereum", "3", "cash", "", wire_received=True),  # settles T+1
    Step("demo-mint-crcl-base-cash", "mint", "CRCLx", "base", "12", "cash", ""),  # waits for the wire
]


class DemoStalled(RuntimeError):
    pass


def run(*, progress: Callable[[str], None], timeout_s: float = 180) -> None:
    refuse_in_production("demo activity")
    spec = compliance_demo.DEMO_MARKET_MAKERS[0]
    participant = Participant.objects.get(legal_name=spec["legal_name"])
    users = get_user_model().objects
    ops, approver = users.get(username="demo-operations"), users.get(username="demo-approver")
    chains = set(custody_demo.demo_chains())
    for step in ACTIVITY:
        if step.chain not in chains:
            continue
        wallet = Wallet.objects.get(participant=participant, chain=step.chain, label="demo")
        if step.kind == "mint":
            request = _mint(step, participant, wallet, ops=ops, approver=approver, timeout_s=timeout_s)
        else:
            request = _redemption(step, participant, wallet, spec["slug"], ops=ops, approver=approver,
                                  progress=progress, timeout_s=timeout_s)
        progress(f"demo: {request.stream} ({step.reference}) {step.kind} {shares(request.quantity_nano)} of "
                 f"{step.symbol} on {step.chain}: {request.state}")
    _statement_and_reconciliation(progress)


def _existing(model, participant, reference):
    return model.objects.filter(participant=participant, idempotency_key=reference).first()


def _approve(request, approver) -> None:
    if request.needs_approval and request.approved_by_id is None:
        services.request_approve(request=request, user=approver)


def _mint(step: Step, participant, wallet, *, ops, approver, timeout_s: float) -> MintRequest:
    mint = _existing(MintRequest, participant, step.reference) or services.mint_request_create(
        participant=participant, product_symbol=step.symbol, chain=step.chain, quantity=step.quantity,
        wallet_id=wallet.pk, funding=step.mode, actor=f"participant:{participant.pk}", idempotency_key=step.reference)
    _approve(mint, approver)
    mint.refresh_from_db()
    if mint.state == "accepted" and step.mode == "in_kind":
        mint = services.mint_shares_receive(mint=mint, custodian_confirmation=f"DEMO-CUST-{step.reference}", user=ops)
    elif mint.state == "accepted" and step.wire_received:
        mint = services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents,
                                         reference=f"DEMO-WIRE-{step.reference}", user=ops)
    if step.until:
        mint = _wait(MintRequest, mint.pk, step.until, timeout_s=timeout_s)
    return mint


def _redemption(step: Step, participant, wallet, slug: str, *, ops, approver, progress, timeout_s) -> Redemption:
    redemption = _existing(Redemption, participant, step.reference) or services.redemption_request_create(
        participant=participant, product_symbol=step.symbol, chain=step.chain, quantity=step.quantity,
        wallet_id=wallet.pk, payout=step.mode, actor=f"participant:{participant.pk}", idempotency_key=step.reference)
    _approve(redemption, approver)
    redemption.refresh_from_db()
    if redemption.state == "requested":
        tx_hash = _redeem_on_chain(redemption, slug)
        progress(f"demo: {redemption.stream}: tokens sent to the vault with its reference ({tx_hash or 'already sent'})")
    redemption = _wait(Redemption, redemption.pk, "burned", timeout_s=timeout_s, also=("shares_delivered",),
                       nudge=lambda: _watch(redemption.chain))
    if redemption.state == "burned" and step.mode == "in_kind":
        redemption = services.redemption_shares_deliver(
            redemption=redemption, custodian_confirmation=f"DEMO-DELIVERY-{step.reference}", user=ops)
    return redemption


def _redeem_on_chain(redemption: Redemption, slug: str) -> str:
    """The market maker's own transfer of the tokens, as the request's `redeem_on_chain` says, unless
    it is already on chain with this request's reference (a run stopped after sending). Returns the
    hash (signature) sent, or "" when it was already there."""
    if custody_demo.chain_kind(redemption.chain) == "solana":
        return _redeem_on_solana(redemption, slug)
    return _redeem_on_evm(redemption, slug)


def _redeem_on_evm(redemption: Redemption, slug: str) -> str:
    """`redeem(amount, ref)` from the wallet: the contract moves the tokens to the vault and logs
    `Redeemed` with the reference."""
    from chains.evm import evm_chain, ref_bytes
    from chains.signers import LocalKeySigner
    from mint_redeem.services import redemption_instructions

    evm = evm_chain(redemption.chain)
    instructions = redemption_instructions(redemption)
    ref = ref_bytes(redemption.stream)
    if any(log.ref == ref for log in evm.redeemed_logs(instructions["token"], from_block=0, to_block=evm.head())):
        return ""
    key = compliance_demo.wallet_key(slug, redemption.chain)
    # Gas money for the market maker's wallet, on the local anvil only (refused in production above).
    evm.w3.provider.make_request("anvil_setBalance", [key.address, hex(10**20)])
    signer = LocalKeySigner(key.key)
    signed = evm.sign_call(signer=signer, token=instructions["token"], function=instructions["function"],
                           args=[int(instructions["amount"]), ref], nonce=evm.pending_nonce(signer.address))
    evm.send_raw(signed)
    if not evm.wait_for_receipt(signed.tx_hash).succeeded:
        raise DemoStalled(f"{redemption.stream}: redeem reverted ({signed.tx_hash})")
    return signed.tx_hash


def _redeem_on_solana(redemption: Redemption, slug: str) -> str:
    """One transaction from the wallet: Token-2022 `transfer_checked` from its associated token account
    to the redemption token account, and a Memo carrying the request's reference (what the watcher
    matches). Skipped when a transfer into that account already carries the reference."""
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.transaction import Transaction
    from spl.token.constants import TOKEN_2022_PROGRAM_ID
    from spl.token.instructions import transfer_checked
    from spl.token.models import TransferCheckedParams

    from chains.solana import solana_chain
    from mint_redeem.services import redemption_instructions

    chain = solana_chain(redemption.chain)
    instructions = redemption_instructions(redemption)
    if chain.account_exists(instructions["destination"]) and any(
            instructions["memo"] in transfer.memos for transfer in chain.transfers_into(instructions["destination"])):
        return ""
    key = compliance_demo.wallet_key(slug, redemption.chain)
    chain.fund(key.pubkey(), lamports=10**9)  # fees, on the local RPC only (refused in production above)
    mint = Pubkey.from_string(instructions["mint"])
    transfer = transfer_checked(TransferCheckedParams(
        program_id=TOKEN_2022_PROGRAM_ID, source=chain.ata(key.pubkey(), mint), mint=mint,
        dest=Pubkey.from_string(instructions["destination"]), owner=key.pubkey(),
        amount=int(instructions["amount"]), decimals=instructions["decimals"]))
    blockhash, _ = chain.latest_blockhash()
    tx = Transaction([key], Message([transfer, chain.memo(instructions["memo"], signer=key.pubkey())], key.pubkey()),
                     blockhash)
    signature = chain.send(bytes(tx))
    if chain.wait(signature).failed:
        raise DemoStalled(f"{redemption.stream}: the transfer failed ({signature})")
    return signature


def _watch(chain: str) -> None:
    """Ask the worker to scan `chain` for redemptions now (what the beat does every few seconds; the
    scan is idempotent, so asking twice changes nothing)."""
    from chains.tasks import watch_redemptions

    watch_redemptions.delay(chain)


def _wait(model, pk: int, state: str, *, timeout_s: float, also: tuple[str, ...] = (),
          nudge: Callable[[], None] | None = None, nudge_every_s: float = 3):
    """Wait for the worker to bring the request to `state` (or one of `also`)."""
    deadline = time.monotonic() + timeout_s
    next_nudge = time.monotonic()
    while True:
        request = model.objects.get(pk=pk)
        if request.state in (state, *also):
            return request
        if request.state in ("failed", "cancelled", "rejected") or time.monotonic() > deadline:
            raise DemoStalled(f"{request.stream} is {request.state}, not {state}: is the Celery worker running? "
                              f"({request.reason or 'no reason recorded'})")
        if nudge is not None and time.monotonic() >= next_nudge:
            nudge()
            next_nudge = time.monotonic() + nudge_every_s
        time.sleep(0.5)


def _statement_and_reconciliation(progress: Callable[[str], None]) -> None:
    """The custodian's statement of what the demo holds, and a reconciliation of the ledger against it:
    once (keyed by their actor), after the demo requests have moved the shares."""
    from custody import services as custody_services
    from custody.models import CustodyAccount, ReconciliationRun, Statement
    from custody.statements.generate import simulated_statement

    account = CustodyAccount.objects.get(account_number=custody_demo.DEMO_ACCOUNT)
    if not Statement.objects.filter(account=account, imported_by=ACTOR).exists():
        result = custody_services.statement_import(content=simulated_statement(account=account, format="csv"),
                                                   format="csv", actor=ACTOR, file_name="demo-statement.csv",
                                                   account=account)
        progress(f"demo: custodian statement {result.statement.statement_ref} imported")
    if not ReconciliationRun.objects.filter(actor=ACTOR).exists():
        run = custody_services.reconciliation_run(actor=ACTOR)
        progress(f"demo: reconciliation {run.id}: {run.pairs_checked} positions checked, "
                 f"{run.breaks_opened} break(s)")
