"""A mint batch's confirmations are recorded together (one database transaction, one ledger append),
and a mint in the batch that refuses its confirmation does not hold back the others (real anvil, the
executor in-process). On Solana (the test profile's local RPC) the mint transactions of one claim are
all recorded before the first is sent, and confirmed together."""

from __future__ import annotations

import pytest

from chains import executor
from chains.evm import evm_chain
from chains.solana import SolanaChain, solana_chain
from ledger import integrity
from ledger.models import Event
from mint_redeem import services
from mint_redeem.models import ChainOperation, MintRequest

from .test_chain_supply import in_kind_mint_to_minting

pytestmark = pytest.mark.django_db


def test_a_batch_of_mints_is_confirmed_in_one_ledger_append(evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    mints = [in_kind_mint_to_minting(api, mm, operations, str(n), f"BNY-B{n}") for n in (1, 2, 3)]
    result = executor.execute_pending(chain_name="ethereum")
    assert len(result.broadcast) == 1 and result.confirmed == 3
    assert set(MintRequest.objects.filter(pk__in=[m.pk for m in mints]).values_list("state", flat=True)) == {"minted"}
    assert set(ChainOperation.objects.values_list("status", "tx_hash")) == {("confirmed", result.broadcast[0])}
    minted = list(Event.objects.filter(event_type="mint.minted").order_by("position"))
    positions = [e.position for e in minted]
    assert positions == list(range(positions[0], positions[0] + 3))  # one append
    assert {e.data["refs"]["tx_hash"] for e in minted} == {result.broadcast[0]}
    assert {m.stream: m.version for m in MintRequest.objects.filter(pk__in=[m.pk for m in mints])} == {
        e.stream_id: e.stream_version for e in minted}  # each row's version is its stream's
    assert evm.total_supply(evm_market.token) == 6 * 10**18
    assert integrity.verify() == []


def test_a_mint_that_refuses_its_confirmation_does_not_hold_back_its_batch(evm_market, mm, api, operations):
    mints = [in_kind_mint_to_minting(api, mm, operations, "1", f"BNY-C{n}") for n in range(3)]
    raw_hex, tx_hash, ops = executor.sign_batch(chain=evm_chain("ethereum"))
    evm_chain("ethereum").send_raw(bytes.fromhex(raw_hex[2:]))
    executor.outbox().on_broadcast_batch(ops)
    # Data changed by hand under the executor: the request no longer waits for its chain step.
    MintRequest.objects.filter(pk=mints[1].pk).update(state="cancelled")

    result = executor.execute_pending(chain_name="ethereum")
    assert result.confirmed == 2
    states = dict(MintRequest.objects.filter(pk__in=[m.pk for m in mints]).values_list("pk", "state"))
    assert states == {mints[0].pk: "minted", mints[1].pk: "cancelled", mints[2].pk: "minted"}
    assert ChainOperation.objects.get(request_reference=mints[1].stream).status == "broadcast"


def test_solana_mint_transactions_of_a_claim_are_recorded_before_any_is_sent_and_confirmed_together(
        solana_market, mm, api, operations, settings, monkeypatch):
    settings.SOLANA_CHAINS = {"solana": {**settings.SOLANA_CHAINS["solana"], "batch_size": 2}}
    chain = solana_chain()
    mints = [in_kind_mint_to_minting(api, mm, operations, "1", f"BNY-S{n}", chain="solana") for n in range(5)]
    at_first_send: list[tuple] = []
    real_send = SolanaChain.send

    def send(self, wire: bytes) -> str:  # the real send, after a look at what is recorded by then
        if not at_first_send:
            at_first_send.extend(ChainOperation.objects.filter(chain="solana").values_list(
                "status", "tx_hash", "last_valid_block_height"))
        return real_send(self, wire)

    confirmed_together: list[dict] = []
    real_confirm = services.mints_confirm_on_chain

    def mints_confirm_on_chain(*, tx_hashes, actor):  # the real one, noting each call
        confirmed_together.append(dict(tx_hashes))
        return real_confirm(tx_hashes=tx_hashes, actor=actor)

    monkeypatch.setattr(SolanaChain, "send", send)
    monkeypatch.setattr(services, "mints_confirm_on_chain", mints_confirm_on_chain)
    result = executor.execute_pending(chain_name="solana")

    assert result.operations == 5 and len(result.broadcast) == 3 and result.confirmed == 5
    assert len(at_first_send) == 5 and {status for status, _, _ in at_first_send} == {"signed"}
    assert {tx for _, tx, _ in at_first_send} == set(result.broadcast)
    assert all(height for _, _, height in at_first_send)
    assert set(MintRequest.objects.filter(pk__in=[m.pk for m in mints]).values_list("state", flat=True)) == {"minted"}
    tx_of = dict(ChainOperation.objects.values_list("request_reference", "tx_hash"))
    # The three transactions' confirmations in one call: one database transaction, one ledger append.
    assert confirmed_together == [{m.pk: tx_of[m.stream] for m in mints}]
    minted = Event.objects.filter(event_type="mint.minted")
    assert {e.stream_id: e.data["refs"]["tx_hash"] for e in minted} == tx_of
    assert chain.balance(mm.wallets["solana"].address, solana_market.mint) == 5 * 10**9
    assert chain.supply(solana_market.mint)[0] == 5 * 10**9
    assert integrity.verify() == []
