"""Encryption at rest for secrets the server must use again, so cannot hash: the HMAC keys of API keys
(the server recomputes request signatures) and webhook signing secrets (the server signs with them).

The keys are FIELD_ENCRYPTION_KEYS, newest first (config/settings.py). Each is stretched with HKDF into a
Fernet key; a MultiFernet encrypts with the first and decrypts with any, so a key can be added in front
while older ciphertexts still read, and `manage.py secrets_reencrypt` then moves every stored ciphertext
to the newest key, after which the old one can be dropped. Columns holding such ciphertexts are
`EncryptedTextField`s, which is how that command finds all of them.

Plaintext secrets never leave these functions for a log: callers pass them to where they are used and
nowhere else.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

__all__ = ["EncryptedTextField", "InvalidToken", "decrypt", "encrypt", "is_current", "reencrypt", "reencrypt_stored"]


class EncryptedTextField(models.TextField):
    """A Fernet token under FIELD_ENCRYPTION_KEYS. Stored and read as the token: code encrypts and
    decrypts explicitly (the request hot path reads these columns with hand-written SQL)."""


@functools.lru_cache(maxsize=8)
def _fernet_for(material: str) -> Fernet:
    """Derived once per key: every signed API request decrypts its key's HMAC secret."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"compliance-hmac-keys").derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@functools.lru_cache(maxsize=8)
def _multi_for(materials: tuple[str, ...]) -> MultiFernet:
    if not materials:
        raise ValueError("FIELD_ENCRYPTION_KEYS is empty")
    return MultiFernet([_fernet_for(material) for material in materials])


def _keys() -> tuple[str, ...]:
    return tuple(settings.FIELD_ENCRYPTION_KEYS)


def encrypt(raw: bytes) -> str:
    """A token under the newest key."""
    return _multi_for(_keys()).encrypt(raw).decode()


def decrypt(token: str) -> bytes:
    """The plaintext of a token under any of the configured keys (InvalidToken if none)."""
    return _multi_for(_keys()).decrypt(token.encode())


def is_current(token: str) -> bool:
    """Whether the token is already under the newest key."""
    try:
        _fernet_for(_keys()[0]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """The same plaintext under the newest key (its original timestamp kept)."""
    return _multi_for(_keys()).rotate(token.encode()).decode()


@dataclass
class ReencryptReport:
    reencrypted: int = 0
    already_current: int = 0
    unreadable: list[str] = field(default_factory=list)  # "<app>.<model> <pk>.<field>": no key decrypts it


def encrypted_columns() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every EncryptedTextField of every installed model."""
    from django.apps import apps

    return [(model, column) for model in apps.get_models() for column in model._meta.concrete_fields
            if isinstance(column, EncryptedTextField)]


def reencrypt_stored() -> ReencryptReport:
    """Move every stored ciphertext to the newest key. Idempotent: one already under it is left as it
    is. Each row is compared and set in one statement, so a row written meanwhile (under the newest key
    anyway) is never overwritten with an older value."""
    report = ReencryptReport()
    for model, column in encrypted_columns():
        rows = model._base_manager.exclude(**{column.attname: ""}).values_list("pk", column.attname)
        for pk, token in rows.iterator(chunk_size=500):
            if is_current(token):
                report.already_current += 1
                continue
            try:
                fresh = reencrypt(token)
            except InvalidToken:
                report.unreadable.append(f"{model._meta.label} {pk}.{column.name}")
                continue
            model._base_manager.filter(pk=pk, **{column.attname: token}).update(**{column.attname: fresh})
            report.reencrypted += 1
    return report
