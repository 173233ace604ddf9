"""The local Solana RPC over LiteSVM, exercised with the `solana` client itself: airdrops, transfers,
statuses, transactions with token balances and memos, signatures per address, blockhash validity
that really expires, and a restart (even after SIGKILL) that keeps every account and signature."""

from __future__ import annotations

import asyncio
import signal

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from tests.chains.solana_helpers import own_solana_node


def run(coro):
    return asyncio.run(coro)


async def _transfer(client: AsyncClient, payer: Keypair, to, lamports: int, blockhash=None):
    blockhash = blockhash or (await client.get_latest_blockhash(Confirmed)).value.blockhash
    tx = Transaction([payer], Message([transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to,
                                                              lamports=lamports))], payer.pubkey()), blockhash)
    return tx


def test_the_solana_client_airdrops_transfers_and_reads_history(tmp_path):
    async def scenario(url):
        async with AsyncClient(url, commitment=Confirmed) as client:
            payer, to = Keypair(), Keypair().pubkey()
            await client.request_airdrop(payer.pubkey(), 10**10)
            assert (await client.get_balance(payer.pubkey())).value == 10**10
            tx = await _transfer(client, payer, to, 10**7)
            signature = (await client.send_raw_transaction(bytes(tx))).value
            # Sending the same bytes again is harmless: the same signature, nothing moves twice.
            assert (await client.send_raw_transaction(bytes(tx))).value == signature
            assert (await client.get_balance(to)).value == 10**7
            status = (await client.get_signature_statuses([signature], search_transaction_history=True)).value[0]
            assert status.err is None and str(status.confirmation_status).endswith("Confirmed")
            found = (await client.get_transaction(signature, encoding="base64", commitment=Confirmed)).value
            assert found.transaction.meta.post_balances[1] == 10**7
            listed = (await client.get_signatures_for_address(to, commitment=Confirmed)).value
            assert [str(s.signature) for s in listed] == [str(signature)]
            # Not finalized yet: a finalized reader does not see it.
            assert (await client.get_signatures_for_address(to, commitment=Finalized)).value == []
            assert (await client.get_minimum_balance_for_rent_exemption(165)).value > 0
            return signature

    with own_solana_node(tmp_path / "node", slot_ms=1000) as (_, url):
        run(scenario(url))


def test_a_blockhash_expires_after_its_last_valid_block_height(tmp_path):
    async def scenario(url):
        async with AsyncClient(url, commitment=Confirmed) as client:
            payer = Keypair()
            await client.request_airdrop(payer.pubkey(), 10**10)
            latest = (await client.get_latest_blockhash(Confirmed)).value
            tx = await _transfer(client, payer, Keypair().pubkey(), 10**7, latest.blockhash)
            while (await client.get_block_height(Confirmed)).value <= latest.last_valid_block_height:
                await asyncio.sleep(0.05)
            try:
                await client.send_raw_transaction(bytes(tx))
            except Exception as exc:  # the client raises its own RPC exception type
                assert "Blockhash not found" in str(exc)
            else:
                raise AssertionError("an expired blockhash was accepted")
            statuses = (await client.get_signature_statuses([tx.signatures[0]], search_transaction_history=True)).value
            assert statuses == [None]

    with own_solana_node(tmp_path / "node", slot_ms=20, valid_blocks=5) as (_, url):
        run(scenario(url))


def test_a_killed_node_restarts_with_its_accounts_and_history(tmp_path):
    payer, to = Keypair(), Keypair().pubkey()

    async def before(url):
        async with AsyncClient(url, commitment=Confirmed) as client:
            await client.request_airdrop(payer.pubkey(), 10**10)
            tx = await _transfer(client, payer, to, 10**7)
            return (await client.send_raw_transaction(bytes(tx))).value, (await client.get_slot(Confirmed)).value

    async def after(url, signature, slot):
        async with AsyncClient(url, commitment=Confirmed) as client:
            assert (await client.get_balance(to)).value == 10**7
            assert (await client.get_balance(payer.pubkey())).value == 10**10 - 10**7 - 5000
            status = (await client.get_signature_statuses([signature], search_transaction_history=True)).value[0]
            assert status is not None and status.slot <= slot
            assert (await client.get_slot(Confirmed)).value > slot  # the clock goes on, never back

    with own_solana_node(tmp_path / "node") as (process, url):
        signature, slot = run(before(url))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    with own_solana_node(tmp_path / "node") as (_, url):
        run(after(url, signature, slot))


def test_signatures_for_an_address_page_back_with_before_and_stop_at_until(tmp_path):
    async def scenario(url):
        async with AsyncClient(url, commitment=Confirmed) as client:
            payer, to = Keypair(), Keypair().pubkey()
            await client.request_airdrop(payer.pubkey(), 10**10)
            sent = []
            for n in range(5):
                tx = await _transfer(client, payer, to, 10**7 + n)
                sent.append(str((await client.send_raw_transaction(bytes(tx))).value))
            first = [str(s.signature) for s in (await client.get_signatures_for_address(to, limit=2)).value]
            assert first == sent[::-1][:2]
            rest = [str(s.signature) for s in (await client.get_signatures_for_address(
                to, limit=10, before=(await client.get_signatures_for_address(to, limit=2)).value[-1].signature)).value]
            assert rest == sent[::-1][2:]
            newer = [str(s.signature) for s in (await client.get_signatures_for_address(
                to, until=(await client.get_signatures_for_address(to)).value[2].signature)).value]
            assert newer == sent[::-1][:2]

    with own_solana_node(tmp_path / "node", slot_ms=1000) as (_, url):
        run(scenario(url))
