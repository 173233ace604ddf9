"""The canonical bytes and hash of an event: one definition shared by append and verify.

An event's canonical document is
    {"event": {data, event_id, metadata, postings, schema_version, stream, type},
     "position": N, "recorded_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "version": V}
encoded as RFC 8785 (JCS) JSON, and its hash is SHA-256(previous hash || canonical bytes).
Python encodes the "event" part; position, recorded_at and version are only known under the
append lock, so the database splices them in (their keys sort after "event", and integers and
plain ASCII strings have one JCS form). `ledger verify` recomputes the whole document here with
the JCS library, which proves the splice and the library agree.

`encode` takes a shortcut on the append path: for JSON-safe values (what event validation lets
through: no floats, integers within 2**53) whose JSON is plain ASCII, the standard library's sorted,
compact JSON is byte for byte the JCS form (ASCII keys sort the same by UTF-16 unit as by code point,
and both escape exactly `"`, `\\` and control characters, in the same way). Anything else goes to
the JCS library. `verify` always hashes with the library (`chain_hash`), so a divergence could not
go unnoticed; a property test compares the two on random documents.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import rfc8785

GENESIS_HASH = bytes(32)
MAX_SAFE_INTEGER = 2**53 - 1


def encode(value) -> bytes:
    """RFC 8785 bytes of a JSON-safe value (see the module docstring)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if text.isascii():
        return text.encode("ascii")
    return rfc8785.dumps(value)


def format_recorded_at(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(*, data, event_id: str, metadata: dict, postings: list, schema_version: int, stream: str,
               event_type: str) -> dict:
    return {
        "data": data,
        "event_id": event_id,
        "metadata": metadata,
        "postings": postings,
        "schema_version": schema_version,
        "stream": stream,
        "type": event_type,
    }


def event_document(*, body: dict, position: int, recorded_at: datetime, version: int) -> dict:
    return {"event": body, "position": position, "recorded_at": format_recorded_at(recorded_at), "version": version}


def chain_hash(previous_hash: bytes, document: dict) -> bytes:
    return hashlib.sha256(previous_hash + rfc8785.dumps(document)).digest()


def posting_line(*, account: str, asset: str, posted: int, pending_in: int, pending_out: int,
                 pending_id: str | None) -> list:
    # Amounts as decimal strings: JCS numbers are IEEE doubles, and token supplies exceed 2**53.
    return [account, asset, str(posted), str(pending_in), str(pending_out), pending_id]
