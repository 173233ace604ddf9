"""Per-chain configuration, as settings.EVM_CHAINS built it from the environment (12-factor)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class EvmChainConfig:
    name: str
    rpc_url: str
    chain_id: int
    confirmations: int  # a block is acted on once this many blocks are on top of it (0: once mined)
    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    batch_size: int
    redemption_vault: str  # "" in development and test: chains.signers names anvil's dev vault


def evm_chain_config(name: str) -> EvmChainConfig:
    try:
        values = settings.EVM_CHAINS[name]
    except KeyError:
        raise ImproperlyConfigured(f"no EVM chain {name!r} is configured (EVM_CHAINS)") from None
    return EvmChainConfig(name=name, **values)


def evm_chain_names() -> list[str]:
    return list(settings.EVM_CHAINS)


@dataclass(frozen=True)
class SolanaChainConfig:
    name: str
    rpc_url: str
    commitment: str  # "confirmed" or "finalized": when an operation or a redemption deposit counts
    batch_size: int  # mints per transaction (a transaction is at most 1232 bytes)


def solana_chain_config(name: str = "solana") -> SolanaChainConfig:
    try:
        values = settings.SOLANA_CHAINS[name]
    except KeyError:
        raise ImproperlyConfigured(f"no Solana chain {name!r} is configured (SOLANA_RPC_URL)") from None
    return SolanaChainConfig(name=name, **values)


def solana_chain_names() -> list[str]:
    return list(getattr(settings, "SOLANA_CHAINS", {}))


def chain_names() -> list[str]:
    """Every configured chain the executor runs: the EVM chains and Solana."""
    return evm_chain_names() + solana_chain_names()
