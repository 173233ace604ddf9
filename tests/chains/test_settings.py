"""Per-chain settings come from the environment; a real chain's depth is a decision, never a default."""

from __future__ import annotations

from tests.subprocesses import command_env, describe, manage

PRINT_CHAINS = "from django.conf import settings; import json; print(json.dumps(settings.EVM_CHAINS, sort_keys=True))"


def _settings(**env):
    return manage("shell", "-c", PRINT_CHAINS, env=command_env(**env), timeout_s=60)


def test_each_chain_reads_its_own_variables():
    import json

    result = _settings(EVM_CHAINS="ethereum,base", EVM_BASE_RPC_URL="https://base.invalid", EVM_BASE_CONFIRMATIONS="5",
                       EVM_BASE_MAX_FEE_PER_GAS_WEI="1000", EVM_BASE_MAX_PRIORITY_FEE_PER_GAS_WEI="10",
                       EVM_BASE_BATCH_SIZE="50")
    assert result.returncode == 0, describe(result)
    chains = json.loads(result.stdout.splitlines()[-1])
    assert set(chains) == {"ethereum", "base"}
    assert chains["base"] == {"rpc_url": "https://base.invalid", "chain_id": 8453, "confirmations": 5,
                              "max_fee_per_gas_wei": 1000, "max_priority_fee_per_gas_wei": 10, "batch_size": 50,
                              "redemption_vault": ""}
    # Without a URL, the test profile's own anvil, with a local chain id and depth 0.
    assert chains["ethereum"]["rpc_url"].endswith("/anvil/test-ethereum.ipc")
    assert (chains["ethereum"]["chain_id"], chains["ethereum"]["confirmations"]) == (31337, 0)


def test_a_real_chain_without_a_confirmation_depth_is_refused():
    result = _settings(EVM_CHAINS="base", EVM_BASE_RPC_URL="https://base.invalid")
    assert result.returncode != 0
    assert "EVM_BASE_CONFIRMATIONS must be set" in result.stderr


def test_a_tip_cap_above_the_fee_cap_is_refused():
    result = _settings(EVM_CHAINS="ethereum", EVM_ETHEREUM_MAX_FEE_PER_GAS_WEI="10",
                       EVM_ETHEREUM_MAX_PRIORITY_FEE_PER_GAS_WEI="11")
    assert result.returncode != 0 and "exceeds" in result.stderr
