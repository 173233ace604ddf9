"""The issuer's attestation signing key and the public keys auditors verify with.

The private key comes from ATTESTATION_SIGNING_KEY (hex seed) or ATTESTATION_SIGNING_KEY_FILE (PKCS#8
PEM), like the project's other secrets; in development and test it is derived from SECRET_KEY so a
fresh checkout can issue attestations. The key is never logged, never put in an exception message and
never served; only its public half and key id leave this module.

Rotation: set the new key; every key that signed a stored attestation stays published (the attestation
events record the signer's public key), and ATTESTATION_RETIRED_PUBLIC_KEY_FILES can add more.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from nacl.signing import SigningKey

from ledger.attestation import key_id


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    raw: bytes
    status: str  # "current" or "retired"

    @property
    def pem(self) -> str:
        return public_pem(self.raw)


def public_pem(raw: bytes) -> str:
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


@functools.lru_cache(maxsize=4)
def _signing_key(seed_hex: str, key_file: str, secret_key: str) -> SigningKey:
    if seed_hex:
        try:
            seed = bytes.fromhex(seed_hex.strip())
        except ValueError:
            raise ImproperlyConfigured("ATTESTATION_SIGNING_KEY must be 64 hex digits") from None
        if len(seed) != 32:
            raise ImproperlyConfigured("ATTESTATION_SIGNING_KEY must be 64 hex digits")
        return SigningKey(seed)
    if key_file:
        with open(key_file, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured("ATTESTATION_SIGNING_KEY_FILE is not an Ed25519 private key")
        return SigningKey(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                            serialization.NoEncryption()))
    # Development and test only (settings refuse production without a key).
    return SigningKey(hashlib.sha256(b"attestation-signing-key:" + secret_key.encode()).digest())


def signing_key() -> SigningKey:
    if settings.IS_PRODUCTION and not (settings.ATTESTATION_SIGNING_KEY or settings.ATTESTATION_SIGNING_KEY_FILE):
        # Checked here rather than at start-up: only the processes that sign need the secret.
        raise ImproperlyConfigured("set ATTESTATION_SIGNING_KEY or ATTESTATION_SIGNING_KEY_FILE in production")
    return _signing_key(settings.ATTESTATION_SIGNING_KEY, settings.ATTESTATION_SIGNING_KEY_FILE,
                        settings.SECRET_KEY)


def current_public_key() -> PublicKey:
    raw = bytes(signing_key().verify_key)
    return PublicKey(key_id=key_id(raw), raw=raw, status="current")


def _retired_from_files() -> list[bytes]:
    raws = []
    for path in settings.ATTESTATION_RETIRED_PUBLIC_KEY_FILES:
        with open(path, "rb") as handle:
            key = serialization.load_pem_public_key(handle.read())
        if not isinstance(key, Ed25519PublicKey):
            raise ImproperlyConfigured(f"{path} is not an Ed25519 public key")
        raws.append(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return raws


def published_keys(*, signer_keys_hex: list[str]) -> list[PublicKey]:
    """The current key first, then every other key that signed an attestation or is configured as retired."""
    current = current_public_key()
    keys = {current.key_id: current}
    for raw in [bytes.fromhex(h) for h in signer_keys_hex] + _retired_from_files():
        keys.setdefault(key_id(raw), PublicKey(key_id=key_id(raw), raw=raw, status="retired"))
    return list(keys.values())
