"""Validation of identifiers: wallet addresses per chain and LEIs."""

from __future__ import annotations

import re

import base58
from eth_utils import is_checksum_address, is_hex_address

from compliance.models import EVM_CHAINS, Chain
from config.api import DomainError

_LEI = re.compile(r"^[A-Z0-9]{18}[0-9]{2}$")


class InvalidInput(DomainError):
    """Input that is wrong in itself: the same input is always refused the same way (a final answer)."""

    http_status = 400
    retryable = False


def validate_lei(lei: str) -> str:
    """ISO 17442: 18 alphanumerics + 2 check digits, valid under ISO 7064 MOD 97-10."""
    value = (lei or "").strip().upper()
    if not _LEI.match(value):
        raise InvalidInput("an LEI is 20 characters: 18 letters/digits and 2 check digits", code="invalid_lei")
    numeric = "".join(str(int(ch, 36)) for ch in value)
    if int(numeric) % 97 != 1:
        raise InvalidInput("LEI check digits do not match", code="invalid_lei")
    return value


def lei_with_check_digits(prefix18: str) -> str:
    """Complete an 18-character LEI prefix with its check digits (used for demo data and tests)."""
    prefix = prefix18.upper()
    numeric = int("".join(str(int(ch, 36)) for ch in prefix + "00"))
    return f"{prefix}{98 - numeric % 97:02d}"


def validate_jurisdiction(code: str) -> str:
    value = (code or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise InvalidInput("jurisdiction must be an ISO 3166-1 alpha-2 code", code="invalid_jurisdiction")
    return value


def validate_address(*, chain: str, address: str) -> str:
    """Return the canonical form of `address` on `chain`, or raise InvalidInput."""
    if chain not in Chain.values:
        raise InvalidInput(f"unknown chain {chain!r}", code="invalid_chain")
    address = (address or "").strip()
    if chain in EVM_CHAINS:
        if not is_hex_address(address):
            raise InvalidInput("an EVM address is 0x followed by 40 hex digits", code="invalid_address")
        # A mixed-case address carries an EIP-55 checksum; an all-lower or all-upper one carries none,
        # so a typo in it would go unnoticed. Refuse it rather than guess.
        if not is_checksum_address(address):
            raise InvalidInput("EVM addresses must be given in EIP-55 checksummed form",
                               code="address_not_checksummed")
        return address
    try:
        raw = base58.b58decode(address)
    except ValueError:
        raise InvalidInput("a Solana address is base58", code="invalid_address") from None
    if len(raw) != 32 or base58.b58encode(raw).decode() != address:
        raise InvalidInput("a Solana address is the base58 encoding of 32 bytes", code="invalid_address")
    return address


def normalize_sanctioned_address(address: str) -> str:
    """EVM hex addresses compare case-insensitively (case only encodes the checksum); others exactly."""
    address = address.strip()
    if is_hex_address(address):
        return address.lower()
    return address
