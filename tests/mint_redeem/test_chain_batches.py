"""A mint batch's confirmations are recorded together (one database transaction, one ledger append),
and a mint in the batch that refuses its confirmation does not hold back the others (real anvil, the
executor in-process)."""

from __future__ import annotations

import pytest

from chains import executor
from chains.evm import evm_chain
from ledger import integrity
from ledger.models import Event
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
