"""Chains tests run against the test profile's own anvil (config.embedded), never a mock. Each test
deploys a token of its own, so tests never see each other's balances or references."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

_symbols = itertools.count(1)


@pytest.fixture
def evm(db):
    from chains.evm import evm_chain

    return evm_chain("ethereum")


@pytest.fixture
def token(evm, db) -> str:
    from chains.services import token_deploy

    return token_deploy(chain=evm, name="Apple tokenized share", symbol=f"AAPLx{next(_symbols)}", decimals=18)


@pytest.fixture
def roles(evm):
    from chains.signers import redemption_vault, signer_for

    class Roles:
        admin = signer_for(evm.name, "admin")
        operator = signer_for(evm.name, "operator")
        pauser = signer_for(evm.name, "pauser")
        vault = redemption_vault(evm.name)

    return Roles


def holder(index: int):
    """Anvil's dev accounts 4..9 act as holders and outsiders (0..3 are the issuer's roles)."""
    from chains.signers import dev_signer

    assert 4 <= index <= 9
    return dev_signer(index)


def call_as(evm, signer, token: str, function: str, args: Sequence = (), *, gas: int | None = None):
    """A holder's own transaction (its nonce from the chain: holders are not ours to manage). With `gas`
    given it is signed without an estimate, so a call the chain refuses lands as a reverted transaction."""
    signed = evm.sign_call(signer=signer, token=token, function=function, args=list(args),
                           nonce=evm.pending_nonce(signer.address), gas=gas)
    evm.send_raw(signed)
    return evm.wait_for_receipt(signed.tx_hash)


def mint(evm, token: str, mints, *, gas: int | None = None, require_success: bool = True):
    """The operator's mintBatch through the nonce manager, as the executor will send it."""
    from chains.services import transact
    from chains.signers import signer_for

    operator = signer_for(evm.name, "operator")
    return transact(chain=evm, signer=operator, require_success=require_success, build=lambda nonce: evm.sign_mint_batch(
        signer=operator, token=token, mints=mints, nonce=nonce, gas=gas))


def rpc(evm, method: str, params: list | None = None):
    response = evm.w3.provider.make_request(method, params or [])
    assert "error" not in response, response
    return response["result"]
