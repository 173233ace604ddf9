"""Chaos across both chain kinds together: mints and redemptions on anvil (ethereum) and on the local
Solana RPC at once, while the Celery worker is SIGKILLed at random moments and restarted (the worker
and the sweeps of tests/mint_redeem/test_chain_chaos.py). Afterwards, on every chain, supply == ledger
== requests to the base unit, every reference is on chain exactly once, and the ledger verifies.
Sizes: CHAOS_BOTH_MINTS and CHAOS_BOTH_REDEMPTIONS in total, split between the two chains (the issue's
300 and 50 by default: about 25 s on the quiet machine), and CHAOS_BOTH_DEADLINE_S, a bound on progress,
not a speed target."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey

from chains.evm import evm_chain, ref_bytes
from chains.signers import solana_signer_for
from chains.solana import solana_chain
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import MintRequest, Redemption

from .conftest import holder_of
from .test_chain_chaos import SWEEPS, killable_worker  # noqa: F401 - the fixture
from .test_solana_end_to_end import SHARE, transfer_with_memo

pytestmark = [pytest.mark.celery]

MINTS = int(os.environ.get("CHAOS_BOTH_MINTS", "300"))
REDEMPTIONS = int(os.environ.get("CHAOS_BOTH_REDEMPTIONS", "50"))
DEADLINE_S = float(os.environ.get("CHAOS_BOTH_DEADLINE_S", "480"))


def memos_at(address: str) -> list[str]:
    """Every memo of every transaction that touched `address`, as the RPC lists them ("[len] text")."""
    async def read() -> list[str]:
        async with AsyncClient(solana_chain().config.rpc_url) as client:
            entries, before = [], None
            while True:
                page = (await client.get_signatures_for_address(
                    Pubkey.from_string(address), before=before, limit=1000, commitment=Confirmed)).value
                entries.extend(page)
                if len(page) < 1000:
                    return [memo.split("] ", 1)[1] for e in entries if e.memo for memo in e.memo.split("; ")]
                before = page[-1].signature

    return asyncio.run(read())


@pytest.mark.timeout(DEADLINE_S + 240)
def test_both_chain_kinds_mint_and_burn_exactly_once_while_the_worker_is_killed(
        killable_worker, evm_market, solana_market, mm, operations):  # noqa: F811 - fixtures
    from config.celery import app

    evm, sol = evm_chain("ethereum"), solana_chain()
    token, mint = evm_market.token, solana_market.mint
    wallets = {"ethereum": mm.wallets["ethereum"], "solana": mm.wallets["solana"]}
    unit = {"ethereum": 10**18, "solana": SHARE}
    rng = random.Random(13)
    stop = threading.Event()

    def chaos() -> None:
        while not stop.wait(rng.uniform(0.2, 3.0)):
            killable_worker.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            killable_worker.start()
            killable_worker.wait_ready()

    def beat() -> None:
        while not stop.wait(1.0):
            for name in SWEEPS:
                app.send_task(name)

    def balance(chain: str) -> int:
        wallet = wallets[chain]
        return evm.balance_of(token, wallet.address) if chain == "ethereum" else sol.balance(wallet.address, mint)

    threads = [threading.Thread(target=chaos, daemon=True), threading.Thread(target=beat, daemon=True)]
    for thread in threads:
        thread.start()
    mints: dict[str, list[int]] = {"ethereum": [], "solana": []}
    redemptions: dict[str, list[int]] = {"ethereum": [], "solana": []}
    try:
        for n in range(MINTS):
            chain = ("ethereum", "solana")[n % 2]
            created = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain=chain,
                                                   quantity=str(1 + n % 3), wallet_id=wallets[chain].pk,
                                                   funding="in_kind", actor="test")
            services.mint_shares_receive(mint=created, custodian_confirmation=f"CHAOS2-{n}", user=operations)
            mints[chain].append(created.pk)

        holder = holder_of(mm)
        deadline = time.monotonic() + DEADLINE_S
        for n in range(REDEMPTIONS):
            chain = ("ethereum", "solana")[n % 2]
            while balance(chain) - unit[chain] * len(redemptions[chain]) < unit[chain]:
                assert time.monotonic() < deadline, f"too few tokens minted in time; see {killable_worker.log_path}"
                time.sleep(0.5)
            redemption = services.redemption_request_create(
                participant=mm.participant, product_symbol="AAPLx", chain=chain, quantity="1",
                wallet_id=wallets[chain].pk, payout="in_kind", actor="test")
            if chain == "ethereum":
                signed = evm.sign_call(signer=holder, token=token, function="redeem",
                                       args=[10**18, ref_bytes(redemption.stream)],
                                       nonce=evm.pending_nonce(holder.address))
                evm.send_raw(signed)
                assert evm.wait_for_receipt(signed.tx_hash).succeeded
            else:
                transfer_with_memo(mm, services.redemption_instructions(redemption))
            redemptions[chain].append(redemption.pk)

        while True:
            minted = MintRequest.objects.filter(state="minted").count()
            burned = Redemption.objects.filter(state="burned").count()
            if minted == MINTS and burned == REDEMPTIONS:
                break
            assert time.monotonic() < deadline, (
                f"{minted}/{MINTS} minted, {burned}/{REDEMPTIONS} burned; see {killable_worker.log_path}")
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert killable_worker.kills >= 3, f"the worker was killed {killable_worker.kills} times: the test proves little"

    for chain in ("ethereum", "solana"):
        minted_units = sum(int(m.token_base_units) for m in MintRequest.objects.filter(pk__in=mints[chain]))
        burned_units = sum(int(r.token_base_units) for r in Redemption.objects.filter(pk__in=redemptions[chain]))
        outstanding = selectors.balance(account=f"tokens/{chain}/AAPLx", asset=f"tok:AAPLx:{chain}")
        supply = evm.total_supply(token) if chain == "ethereum" else sol.supply(mint)[0]
        assert supply == outstanding.posted == minted_units - burned_units, chain
        assert outstanding.pending_in == 0

    contract = evm.token(token)
    assert sorted(log["args"]["ref"] for log in contract.events.Minted.get_logs(from_block=0)) == sorted(
        ref_bytes(f"mint-{pk}") for pk in mints["ethereum"])
    assert sorted(log["args"]["ref"] for log in contract.events.BurnedFromVault.get_logs(from_block=0)) == sorted(
        ref_bytes(f"redemption-{pk}") for pk in redemptions["ethereum"])
    # Solana: each mint's memo in exactly one landed transaction into the wallet's account; each
    # redemption's memo twice at the redemption account (the holder's deposit, then our one burn).
    assert sorted(memos_at(str(sol.ata(wallets["solana"].address, mint)))) == sorted(
        [f"mint-{pk}" for pk in mints["solana"]] + [f"redemption-{pk}" for pk in redemptions["solana"]])
    vault_account = str(sol.ata(solana_signer_for("vault").pubkey(), mint))
    assert sorted(memos_at(vault_account)) == sorted(f"redemption-{pk}" for pk in redemptions["solana"] for _ in (1, 2))
    assert integrity.verify() == []
