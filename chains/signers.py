"""Who signs chain transactions, behind one small interface so a KMS or HSM signer can replace the
local key without touching the adapter.

Keys come from the environment or from files, per chain and role, never from the database and never
through settings (Django's error pages and `diffsettings` print settings):

    EVM_<CHAIN>_<ROLE>_KEY, EVM_<ROLE>_KEY                hex private key
    EVM_<CHAIN>_<ROLE>_KEY_FILE, EVM_<ROLE>_KEY_FILE      a file holding it (a mounted secret)

Roles: `operator` (MINTER and BURNER: the hot key the executor uses), `admin` (DEFAULT_ADMIN: deploys
and grants; should stay cold), `pauser`. Development and test fall back to anvil's well-known dev
accounts; production refuses those keys outright, and a missing key is an error, never a fallback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from eth_account import Account

ROLES = ("operator", "admin", "pauser")

# anvil's (and hardhat's) default accounts, from the public mnemonic "test test ... junk". They are
# public knowledge: anything they hold on a real chain is taken at once, hence refused in production.
ANVIL_DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
# Which dev account plays which part in development and test. The vault is an address, not a signer.
DEV_ACCOUNT_INDEX = {"admin": 0, "operator": 1, "vault": 2, "pauser": 3}


class Signer(Protocol):
    """Signs transactions for one address. A KMS/HSM signer implements the same two members."""

    address: str

    def sign_transaction(self, tx: dict) -> bytes:
        """The raw signed transaction (EIP-2718 bytes), ready for eth_sendRawTransaction."""
        ...


class LocalKeySigner:
    """A private key held in this process's memory. The key is never printed: repr, str and
    exceptions name the address only."""

    __slots__ = ("_account", "address")

    def __init__(self, private_key: str | bytes) -> None:
        self._account = Account.from_key(private_key)
        self.address = self._account.address

    def sign_transaction(self, tx: dict) -> bytes:
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:
        return f"LocalKeySigner({self.address})"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into a Celery message, a cache or a log record
        raise TypeError("a signer cannot be pickled")


def _dev_addresses() -> frozenset[str]:
    return frozenset(Account.from_key(key).address for key in ANVIL_DEV_KEYS)


def _configured_key(chain: str, role: str) -> str | None:
    for name in (f"EVM_{chain.upper()}_{role.upper()}_KEY", f"EVM_{role.upper()}_KEY"):
        if os.environ.get(name):
            return os.environ[name].strip()
        path = os.environ.get(f"{name}_FILE")
        if path:
            try:
                return Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ImproperlyConfigured(f"{name}_FILE: cannot read the key file ({exc.strerror})") from None
    return None


def signer_for(chain: str, role: str) -> Signer:
    if role not in ROLES:
        raise ValueError(f"unknown signer role {role!r}; one of {ROLES}")
    key = _configured_key(chain, role)
    if key is None:
        if settings.IS_PRODUCTION:
            raise ImproperlyConfigured(f"no {role} key for {chain}: set EVM_{chain.upper()}_{role.upper()}_KEY"
                                       f" or EVM_{role.upper()}_KEY (or the _FILE variant)")
        key = ANVIL_DEV_KEYS[DEV_ACCOUNT_INDEX[role]]
    try:
        signer = LocalKeySigner(key)
    except (ValueError, TypeError):
        # The exception text could quote the key: say only which setting is wrong.
        raise ImproperlyConfigured(f"the {role} key for {chain} is not a valid private key") from None
    if settings.IS_PRODUCTION and signer.address in _dev_addresses():
        raise ImproperlyConfigured(f"the {role} key for {chain} is one of anvil's public dev keys")
    return signer


def redemption_vault(chain: str) -> str:
    from chains.config import evm_chain_config

    vault = evm_chain_config(chain).redemption_vault
    if vault:
        return vault
    if settings.IS_PRODUCTION:
        raise ImproperlyConfigured(f"EVM_{chain.upper()}_REDEMPTION_VAULT must be set in the production profile")
    return Account.from_key(ANVIL_DEV_KEYS[DEV_ACCOUNT_INDEX["vault"]]).address


def dev_signer(index: int) -> LocalKeySigner:
    """Anvil's dev account `index` (development and test only: tests act as holders with these)."""
    if settings.IS_PRODUCTION:
        raise ImproperlyConfigured("anvil's dev accounts are for development and test only")
    return LocalKeySigner(ANVIL_DEV_KEYS[index])


# --- Solana --------------------------------------------------------------------------------------
# Ed25519 keys, per role, from SOLANA_<ROLE>_KEY (base58 of the 64-byte secret, or the JSON byte array
# `solana-keygen` writes) or SOLANA_<ROLE>_KEY_FILE. Roles: `operator` (mint authority and fee payer:
# the executor's hot key), `admin` (freeze authority, metadata and multiplier authority: cold), `vault`
# (owner of the redemption token account: signs burns). Development and test derive well-known keys
# from public seeds, refused in production like anvil's.
SOLANA_ROLES = ("operator", "admin", "vault")


class SolanaSigner(Protocol):
    """Signs Solana messages for one public key. A KMS/HSM signer implements the same two members."""

    def pubkey(self): ...

    def sign_message(self, message: bytes):
        """The Ed25519 signature (solders Signature) of the serialized message."""
        ...


class LocalSolanaSigner:
    __slots__ = ("_keypair",)

    def __init__(self, keypair) -> None:
        self._keypair = keypair

    def pubkey(self):
        return self._keypair.pubkey()

    def sign_message(self, message: bytes):
        return self._keypair.sign_message(message)

    def __repr__(self) -> str:
        return f"LocalSolanaSigner({self._keypair.pubkey()})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a signer cannot be pickled")


def _solana_dev_keypair(role: str):
    import hashlib

    from solders.keypair import Keypair

    return Keypair.from_seed(hashlib.sha256(f"issuer-ledger development solana {role}".encode()).digest())


def _solana_keypair(text: str):
    import json

    import base58
    from solders.keypair import Keypair

    text = text.strip()
    raw = bytes(json.loads(text)) if text.startswith("[") else base58.b58decode(text)
    return Keypair.from_bytes(raw)


def solana_signer_for(role: str) -> LocalSolanaSigner:
    if role not in SOLANA_ROLES:
        raise ValueError(f"unknown Solana signer role {role!r}; one of {SOLANA_ROLES}")
    name = f"SOLANA_{role.upper()}_KEY"
    text = os.environ.get(name)
    if not text and os.environ.get(f"{name}_FILE"):
        try:
            text = Path(os.environ[f"{name}_FILE"]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read the key file ({exc.strerror})") from None
    if not text:
        if settings.IS_PRODUCTION:
            raise ImproperlyConfigured(f"no Solana {role} key: set {name} or {name}_FILE")
        return LocalSolanaSigner(_solana_dev_keypair(role))
    try:
        keypair = _solana_keypair(text)
    except Exception:
        raise ImproperlyConfigured(f"{name} is not a valid Solana keypair") from None
    if settings.IS_PRODUCTION and keypair.pubkey() in {_solana_dev_keypair(r).pubkey() for r in SOLANA_ROLES}:
        raise ImproperlyConfigured(f"the Solana {role} key is one of the public development keys")
    return LocalSolanaSigner(keypair)
