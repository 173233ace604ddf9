"""Each attestation's reserves reach the product's ReserveFeed through the outbox and the executor,
exactly once, and read back through web3 with the Chainlink AggregatorV3 interface."""

from __future__ import annotations

import json

import pytest
from web3.exceptions import ContractLogicError

from chains import executor
from chains.evm import ref_bytes
from chains.services import reserve_feed_deploy
from custody.attestations import attestation_issue
from custody.models import ReserveFeedDeployment
from mint_redeem.models import ChainOperation
from mint_redeem.reserve_feed import feed_reference, reserve_feed_publish
from tests.custody.conftest import E18, aapl, custodian, mint, registered  # noqa: F401 (fixtures)


@pytest.fixture
def feed(evm, registered):  # noqa: F811
    address = reserve_feed_deploy(chain=evm, description="AAPLx / shares in custody")
    ReserveFeedDeployment.objects.create(product=registered, chain="ethereum", address=address)
    return address


def _product(row):
    return next(p for p in json.loads(row.document)["payload"]["products"] if p["symbol"] == "AAPLx")


def test_an_attestation_is_published_once_and_read_back_as_an_aggregator(evm, feed, registered):  # noqa: F811
    contract = evm.feed(feed)
    assert (contract.functions.decimals().call(), contract.functions.description().call(),
            contract.functions.version().call()) == (9, "AAPLx / shares in custody", 1)
    with pytest.raises(ContractLogicError):
        contract.functions.latestRoundData().call()  # no round yet

    row = attestation_issue(actor="user:1")
    [operation] = reserve_feed_publish(attestation=row)
    assert reserve_feed_publish(attestation=row) == [operation]  # the same row again, nothing new
    assert (operation.kind, operation.address, operation.request_reference) == (
        "reserve", feed, feed_reference(attestation_id=row.attestation_id, symbol="AAPLx", chain="ethereum"))

    result = executor.execute_pending(chain_name="ethereum")
    assert result.operations == 1 and result.confirmed == 1, result
    operation.refresh_from_db()
    assert operation.status == ChainOperation.Status.CONFIRMED and operation.tx_hash

    figures = _product(row)
    round_id, answer, started_at, updated_at, answered_in = contract.functions.latestRoundData().call()
    assert (round_id, answered_in) == (1, 1) and updated_at == started_at > 0
    assert answer == int(figures["shares_available_nano"]) == 10 * 10**9
    supply, ref = contract.functions.roundSupply(1).call()
    assert supply == int(figures["shares_required_nano"]) and ref == ref_bytes(operation.request_reference)
    assert answer >= supply  # what a SecureMint-style consumer checks

    # The next attestation is the next round; the first is still readable.
    mint("ethereum", "AAPLx", E18)
    second = attestation_issue(actor="user:1")
    reserve_feed_publish(attestation=second)
    executor.execute_pending(chain_name="ethereum")
    assert contract.functions.latestRound().call() == 2
    assert contract.functions.roundSupply(2).call()[0] == int(_product(second)["shares_required_nano"])
    assert contract.functions.getRoundData(1).call()[1] == answer
    assert executor.execute_pending(chain_name="ethereum").operations == 0  # nothing sent twice


def test_the_feed_refuses_a_reference_twice_and_anyone_but_the_updater(evm, feed, roles):
    from chains.services import transact
    from tests.chains.conftest import holder

    contract = evm.feed(feed)
    ref = ref_bytes("rf-test-once")
    transact(chain=evm, signer=roles.operator, build=lambda nonce: evm.sign_feed_submit(
        signer=roles.operator, feed=feed, reserve_nano=5, supply_nano=4, ref=ref, nonce=nonce))
    with pytest.raises(ContractLogicError):
        contract.functions.submit(6, 4, ref).call({"from": roles.operator.address})
    with pytest.raises(ContractLogicError):
        contract.functions.submit(6, 4, ref_bytes("rf-other")).call({"from": holder(5).address})
    assert contract.functions.latestRound().call() == 1
