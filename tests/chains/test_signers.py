"""Keys come from the environment or files, never reach a log or a pickle, and anvil's public dev
keys are refused in production."""

from __future__ import annotations

import logging
import pickle

import pytest
from django.core.exceptions import ImproperlyConfigured
from eth_account import Account

from chains.signers import ANVIL_DEV_KEYS, LocalKeySigner, signer_for

pytestmark = pytest.mark.django_db


def test_a_key_from_the_environment_or_a_file_per_chain_or_shared(monkeypatch, tmp_path):
    shared, per_chain = Account.create(), Account.create()
    monkeypatch.setenv("EVM_OPERATOR_KEY", shared.key.hex())
    assert signer_for("base", "operator").address == shared.address
    key_file = tmp_path / "key"
    key_file.write_text(per_chain.key.hex() + "\n")
    monkeypatch.setenv("EVM_BASE_OPERATOR_KEY_FILE", str(key_file))
    assert signer_for("base", "operator").address == per_chain.address
    assert signer_for("arbitrum", "operator").address == shared.address


def test_development_and_test_fall_back_to_anvils_dev_accounts_by_role(monkeypatch):
    for name in ("EVM_OPERATOR_KEY", "EVM_ETHEREUM_OPERATOR_KEY", "EVM_ADMIN_KEY", "EVM_ETHEREUM_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert signer_for("ethereum", "admin").address == Account.from_key(ANVIL_DEV_KEYS[0]).address
    assert signer_for("ethereum", "operator").address == Account.from_key(ANVIL_DEV_KEYS[1]).address


def test_production_refuses_a_missing_key_and_anvils_public_keys(monkeypatch, settings):
    settings.IS_PRODUCTION = True
    monkeypatch.delenv("EVM_OPERATOR_KEY", raising=False)
    monkeypatch.delenv("EVM_ETHEREUM_OPERATOR_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="no operator key"):
        signer_for("ethereum", "operator")
    monkeypatch.setenv("EVM_OPERATOR_KEY", ANVIL_DEV_KEYS[1])
    with pytest.raises(ImproperlyConfigured, match="public dev keys"):
        signer_for("ethereum", "operator")


def test_a_bad_key_is_named_by_its_setting_not_quoted(monkeypatch):
    monkeypatch.setenv("EVM_PAUSER_KEY", "0xnot-a-key-but-secret-looking")
    with pytest.raises(ImproperlyConfigured) as refused:
        signer_for("ethereum", "pauser")
    assert "secret-looking" not in str(refused.value)


def test_the_key_never_shows_in_repr_logs_or_pickles(monkeypatch, caplog, evm):
    from chains.services import token_deploy

    account = Account.create()
    key_hex = account.key.hex().removeprefix("0x")
    monkeypatch.setenv("EVM_ETHEREUM_ADMIN_KEY", key_hex)
    # Fund the new admin from anvil's first account so it can deploy.
    evm.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])
    signer = signer_for("ethereum", "admin")
    assert key_hex not in repr(signer) and key_hex not in str(signer)
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with caplog.at_level(logging.DEBUG):
        token_deploy(chain=evm, name="Keyed", symbol="KEY", decimals=18)
    assert caplog.records, "web3 logs its requests at DEBUG: the check below must have something to read"
    assert key_hex not in caplog.text.lower()


def test_a_signer_signs_for_its_own_address_only():
    account = Account.create()
    signer = LocalKeySigner(account.key)
    raw = signer.sign_transaction({"type": 2, "chainId": 31337, "nonce": 0, "to": account.address, "value": 0,
                                   "gas": 21000, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "data": "0x"})
    assert Account.recover_transaction(raw) == account.address
