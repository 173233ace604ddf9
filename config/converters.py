"""URL converters. `<id:name>` is a database id: 1 to PostgreSQL's largest bigint, which the schema states
(an int64 from 1), so a generated client holds every id in a 64-bit integer. Anything else (`null`, `-1`,
20 digits) matches no URL: a 404, in JSON under /api/ (config.errors), before any query."""

from __future__ import annotations

from django.urls import register_converter

MAX_ID = 2**63 - 1


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(value)  # no match: Django goes on to the next pattern, and in the end 404s
        return number

    def to_url(self, value) -> str:
        return str(int(value))


register_converter(IdConverter, "id")


class AttestationIdConverter:
    """`<attestation:name>`: an attestation's content address, 32 lowercase hex digits."""

    regex = "[0-9a-f]{32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


class SymbolConverter(AttestationIdConverter):
    """`<symbol:name>`: a product symbol, letters and digits (custody.models.SYMBOL_VALIDATOR)."""

    regex = "[A-Za-z0-9]{1,16}"


register_converter(AttestationIdConverter, "attestation")
register_converter(SymbolConverter, "symbol")
