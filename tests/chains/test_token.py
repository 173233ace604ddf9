"""The token contract on a real anvil: what the chain itself refuses is what makes a double mint or
a double burn impossible whatever our code does."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractCustomError

from chains.evm import Mint, ref_bytes, ref_text
from tests.chains.conftest import call_as, holder, mint

pytestmark = pytest.mark.django_db

GAS = 500_000  # given explicitly where a refused call must land on chain as a reverted transaction


def test_deploy_sets_metadata_roles_and_vault(evm, token, roles):
    contract = evm.token(token)
    assert contract.functions.decimals().call() == 18
    assert contract.functions.totalSupply().call() == 0
    assert contract.functions.redemptionVault().call() == roles.vault
    for role, account in (("MINTER_ROLE", roles.operator), ("BURNER_ROLE", roles.operator),
                          ("PAUSER_ROLE", roles.pauser)):
        role_id = getattr(contract.functions, role)().call()
        assert contract.functions.hasRole(role_id, account.address).call()
    admin_role = contract.functions.DEFAULT_ADMIN_ROLE().call()
    assert contract.functions.hasRole(admin_role, roles.admin.address).call()
    assert not contract.functions.hasRole(admin_role, roles.operator.address).call()


def test_decimals_are_set_at_deploy(evm):
    from chains.services import token_deploy

    six = token_deploy(chain=evm, name="Six", symbol="SIX", decimals=6)
    assert evm.token(six).functions.decimals().call() == 6


def test_mint_batch_mints_each_reference_and_emits_minted(evm, token):
    alice, bob = holder(4), holder(5)
    receipt = mint(evm, token, [Mint(alice.address, 10**18, ref_bytes("mint-1")),
                                Mint(bob.address, 2 * 10**18, ref_bytes("mint-2"))])
    assert receipt.succeeded
    assert evm.balance_of(token, alice.address) == 10**18
    assert evm.balance_of(token, bob.address) == 2 * 10**18
    assert evm.total_supply(token) == 3 * 10**18
    assert evm.ref_minted(token, ref_bytes("mint-1")) and evm.ref_minted(token, ref_bytes("mint-2"))
    minted = evm.token(token).events.Minted.get_logs(from_block=receipt.block_number, to_block=receipt.block_number)
    assert [(log["args"]["to"], log["args"]["amount"], ref_text(log["args"]["ref"])) for log in minted] == [
        (alice.address, 10**18, "mint-1"), (bob.address, 2 * 10**18, "mint-2")]


def test_a_reference_minted_once_is_refused_on_chain_and_nothing_moves(evm, token):
    alice = holder(4)
    assert mint(evm, token, [Mint(alice.address, 5, ref_bytes("mint-7"))]).succeeded

    # The second transaction is signed without an estimate, so it reaches the chain: the chain refuses it.
    again = mint(evm, token, [Mint(alice.address, 5, ref_bytes("mint-7"))], gas=GAS, require_success=False)
    assert not again.succeeded
    assert evm.balance_of(token, alice.address) == 5
    assert evm.total_supply(token) == 5

    # A batch with one repeated reference among new ones is refused whole.
    mixed = mint(evm, token, [Mint(alice.address, 1, ref_bytes("mint-8")), Mint(alice.address, 1, ref_bytes("mint-7"))],
                 gas=GAS, require_success=False)
    assert not mixed.succeeded
    assert not evm.ref_minted(token, ref_bytes("mint-8"))
    assert evm.total_supply(token) == 5

    # The same reference twice within one batch is refused too.
    twice = mint(evm, token, [Mint(alice.address, 1, ref_bytes("mint-9")), Mint(alice.address, 1, ref_bytes("mint-9"))],
                 gas=GAS, require_success=False)
    assert not twice.succeeded and evm.total_supply(token) == 5


def test_estimating_a_repeated_reference_refuses_it_before_anything_is_signed(evm, token, roles):
    alice = holder(4)
    mint(evm, token, [Mint(alice.address, 5, ref_bytes("mint-1"))])
    with pytest.raises(ContractCustomError):
        evm.sign_mint_batch(signer=roles.operator, token=token, mints=[Mint(alice.address, 5, ref_bytes("mint-1"))],
                            nonce=evm.pending_nonce(roles.operator.address))


def test_mismatched_lengths_and_empty_batches_are_refused(evm, token, roles):
    alice = holder(4)
    nonce = evm.pending_nonce(roles.operator.address)
    for args in (([alice.address], [1, 2], [ref_bytes("mint-1")]), ([alice.address], [1], []), ([], [], [])):
        with pytest.raises(ContractCustomError):
            evm.sign_call(signer=roles.operator, token=token, function="mintBatch", args=args, nonce=nonce)
    assert evm.total_supply(token) == 0


def test_only_the_minter_mints(evm, token):
    outsider = holder(6)
    receipt = call_as(evm, outsider, token, "mintBatch", ([outsider.address], [10**18], [ref_bytes("mint-1")]), gas=GAS)
    assert not receipt.succeeded
    assert evm.total_supply(token) == 0 and not evm.ref_minted(token, ref_bytes("mint-1"))


def test_pause_stops_transfers_mints_redemptions_and_burns_until_unpaused(evm, token, roles):
    from chains.services import token_call

    alice, bob = holder(4), holder(5)
    mint(evm, token, [Mint(alice.address, 100, ref_bytes("mint-1"))])
    # Neither a holder nor the operator can pause.
    assert not call_as(evm, alice, token, "pause", gas=GAS).succeeded
    token_call(chain=evm, signer=roles.pauser, token=token, function="pause")
    assert evm.token(token).functions.paused().call()

    assert not call_as(evm, alice, token, "transfer", (bob.address, 10), gas=GAS).succeeded
    assert not call_as(evm, alice, token, "redeem", (10, ref_bytes("redemption-1")), gas=GAS).succeeded
    assert not mint(evm, token, [Mint(alice.address, 1, ref_bytes("mint-2"))], gas=GAS, require_success=False).succeeded
    assert evm.balance_of(token, alice.address) == 100 and evm.total_supply(token) == 100

    token_call(chain=evm, signer=roles.pauser, token=token, function="unpause")
    assert call_as(evm, alice, token, "transfer", (bob.address, 10), gas=GAS).succeeded
    assert evm.balance_of(token, bob.address) == 10


def test_redeem_moves_the_holders_tokens_to_the_vault_with_the_event(evm, token, roles):
    alice = holder(4)
    mint(evm, token, [Mint(alice.address, 100, ref_bytes("mint-1"))])
    receipt = call_as(evm, alice, token, "redeem", (40, ref_bytes("redemption-3")))
    assert receipt.succeeded
    assert evm.balance_of(token, alice.address) == 60
    assert evm.balance_of(token, roles.vault) == 40
    assert evm.total_supply(token) == 100  # moved, not burned yet
    [log] = evm.redeemed_logs(token, from_block=receipt.block_number, to_block=receipt.block_number)
    assert (log.holder, log.amount_base_units, ref_text(log.ref)) == (alice.address, 40, "redemption-3")
    assert (log.tx_hash, log.block_hash) == (receipt.tx_hash, receipt.block_hash)
    # More than the holder has is refused.
    assert not call_as(evm, alice, token, "redeem", (61, ref_bytes("redemption-4")), gas=GAS).succeeded


def test_burn_from_vault_burns_once_per_reference(evm, token, roles):
    from chains.services import transact

    alice = holder(4)
    mint(evm, token, [Mint(alice.address, 100, ref_bytes("mint-1"))])
    call_as(evm, alice, token, "redeem", (100, ref_bytes("redemption-1")))

    def burn(amount, ref, gas=None):
        return transact(chain=evm, signer=roles.operator, require_success=False, build=lambda nonce: (
            evm.sign_burn_from_vault(signer=roles.operator, token=token, amount_base_units=amount,
                                     ref=ref_bytes(ref), nonce=nonce, gas=gas)))

    assert burn(60, "redemption-1").succeeded
    assert evm.total_supply(token) == 40 and evm.balance_of(token, roles.vault) == 40
    assert evm.ref_burned(token, ref_bytes("redemption-1"))

    assert not burn(40, "redemption-1", gas=GAS).succeeded  # the same reference again: refused on chain
    assert evm.total_supply(token) == 40 and evm.balance_of(token, roles.vault) == 40
    # Only the burner burns.
    assert not call_as(evm, alice, token, "burnFromVault", (40, ref_bytes("redemption-2")), gas=GAS).succeeded
    assert evm.total_supply(token) == 40


def test_only_the_admin_moves_the_vault(evm, token, roles):
    from chains.services import token_call

    new_vault = holder(9).address
    assert not call_as(evm, holder(4), token, "setRedemptionVault", (new_vault,), gas=GAS).succeeded
    with pytest.raises(ContractCustomError):
        token_call(chain=evm, signer=roles.operator, token=token, function="setRedemptionVault", args=(new_vault,))
    token_call(chain=evm, signer=roles.admin, token=token, function="setRedemptionVault", args=(new_vault,))
    assert evm.token(token).functions.redemptionVault().call() == new_vault


def test_supply_and_balances_are_read_at_a_block(evm, token):
    alice, bob = holder(4), holder(5)
    first = mint(evm, token, [Mint(alice.address, 7, ref_bytes("mint-1"))])
    second = mint(evm, token, [Mint(bob.address, 5, ref_bytes("mint-2"))])
    assert second.block_number > first.block_number
    assert evm.total_supply(token, block=first.block_number) == 7
    assert evm.balance_of(token, bob.address, block=first.block_number) == 0
    assert evm.total_supply(token, block=second.block_number) == 12
    assert evm.balance_of(token, bob.address, block=second.block_number) == 5
    assert evm.total_supply(token, block=first.block_number - 1) == 0


def test_references_are_readable_ascii_of_at_most_32_bytes():
    assert ref_text(ref_bytes("redemption-123")) == "redemption-123"
    assert len(ref_bytes("mint-1")) == 32
    assert ref_text(b"\xff" * 32) is None and ref_text(b"\0" * 32) is None
    for bad in ("", "x" * 33, "mint-\0", "mint-é"):
        with pytest.raises((ValueError, UnicodeEncodeError)):
            ref_bytes(bad)
