"""Encryption at rest for HMAC signing keys (the server must recompute HMACs, so it cannot hash them).
The Fernet key comes from COMPLIANCE_ENCRYPTION_KEY, or is derived from SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet() -> Fernet:
    material = (getattr(settings, "COMPLIANCE_ENCRYPTION_KEY", "") or settings.SECRET_KEY).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"compliance-hmac-keys").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(raw: bytes) -> str:
    return _fernet().encrypt(raw).decode()


def decrypt(token: str) -> bytes:
    return _fernet().decrypt(token.encode())
