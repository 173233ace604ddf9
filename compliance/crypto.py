"""Encryption at rest for HMAC signing keys (the server must recompute HMACs, so it cannot hash them).
The Fernet key comes from COMPLIANCE_ENCRYPTION_KEY, or is derived from SECRET_KEY."""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet() -> Fernet:
    return _fernet_for((getattr(settings, "COMPLIANCE_ENCRYPTION_KEY", "") or settings.SECRET_KEY).encode())


@functools.lru_cache(maxsize=4)
def _fernet_for(material: bytes) -> Fernet:
    """Derived once per key material: every signed API request decrypts its key's HMAC secret."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"compliance-hmac-keys").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(raw: bytes) -> str:
    return _fernet().encrypt(raw).decode()


def decrypt(token: str) -> bytes:
    return _fernet().decrypt(token.encode())
