"""The reserve attestation document: how it is computed from the log, signed and checked.

Pure Python (no Django, no database), so that the server that issues attestations and the offline
verifier an auditor runs (`ledger.verify_attestation`) share one definition of every figure:

    fold = LogFold(); fold.apply(event) for each event up to the attested position
    payload = build_payload(head=..., fold=fold)       # what the figures are
    signed = sign_encoded(encode_payload(payload), issued_at=..., signing_key=...)   # the document's bytes

A document is {"issued_at", "key_id", "payload", "signature"}. The signature is Ed25519 over the
RFC 8785 bytes of the document without "signature": it covers the figures, the issue time and the
key id. The payload is a function of the log up to `payload.ledger_head.position` alone, so the
payload computed later for that position equals, byte for byte, the one issued then (the issue time
and signature are the envelope, not the payload). Ed25519 signatures are deterministic.

The issuer encodes a document once: the payload's RFC 8785 bytes (at 500 products some 400 kB) with
the standard library's shortcut (ledger.canonical.encode), then the envelope spliced around them,
signed, and the signature spliced in (`sign_encoded`). Checking a document someone hands us always
re-encodes it with the RFC 8785 library (`signed_bytes`), so the two must agree, and a test holds them
to it.

The folded log is read with custody's account naming (custody/<custodian>/<TICKER>,
in_transit/<broker>/<TICKER>, tokens/<chain>/<SYMBOL>) and custody's reference events (products,
deployments, multipliers, statements, observed supply): the ledger app owns the document format, the
custody app writes those events, and this module is where an auditor reads what each figure means.
Reserve semantics are custody.reserves's: available = held - committed out; shares in transit do
not count; tokens being minted count as outstanding; coverage is rounded down to 9 decimals.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction

import rfc8785

from ledger import canonical as ledger_canonical

FORMAT = "issuer-reserve-attestation/1"
NANO = 10**9
COVERAGE_PLACES = Decimal("0.000000001")
ATTESTATION_EVENT = "custody.attestation_issued"
# The events whose data (not postings) the figures read; the latest supply observation per product and
# chain is on the stream supply-<SYMBOL>-<chain>.
SUPPLY_EVENT = "custody.supply_observed"
REFERENCE_EVENTS = ("custody.product_registered", "custody.deployment_registered",
                    "custody.product_multiplier_changed", "custody.statement_imported", SUPPLY_EVENT)


class AttestationError(Exception):
    """The document is malformed, its signature does not verify, or a figure disagrees with the log."""


@dataclass
class LogFold:
    """What the figures need from the log, folded event by event in position order."""

    balances: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (path, asset) -> [posted, in, out]
    products: dict[str, dict] = field(default_factory=dict)  # symbol -> {ticker, multiplier, chains{chain: decimals}}
    statements: dict[str, dict] = field(default_factory=dict)  # custodian -> latest statement
    observed: dict[tuple[str, str], dict] = field(default_factory=dict)  # (symbol, chain) -> latest observation

    def apply_postings(self, postings) -> None:
        """Postings as the canonical form writes them: [account, asset, posted, pending_in, pending_out, id]."""
        for account, asset, posted, pending_in, pending_out, _pending_id in postings:
            figures = self.balances.setdefault((account, asset), [0, 0, 0])
            figures[0] += int(posted)
            figures[1] += int(pending_in)
            figures[2] += int(pending_out)

    def apply_reference(self, event_type: str, data: dict, position: int) -> None:
        if event_type == "custody.product_registered":
            self.products[data["product"]] = {"ticker": data["ticker"], "multiplier": data["multiplier"], "chains": {}}
        elif event_type == "custody.deployment_registered" and data["product"] in self.products:
            self.products[data["product"]]["chains"][data["chain"]] = int(data["decimals"])
        elif event_type == "custody.product_multiplier_changed" and data["product"] in self.products:
            self.products[data["product"]]["multiplier"] = data["multiplier"]
        elif event_type == "custody.statement_imported":
            self.statements[data["custodian"]] = {
                "statement_ref": data["statement_ref"], "as_of": data["as_of"], "sha256": data["sha256"],
                "position": position, "holdings": data["holdings"]}
        elif event_type == SUPPLY_EVENT:
            self.observed[(data["product"], data["chain"])] = {**data, "position": position}

    def set_balances(self, balances: dict[tuple[str, str], tuple[int, int, int]]) -> None:
        """The server's shortcut: balances read as of the position instead of folded from postings."""
        self.balances = {key: [int(v) for v in value] for key, value in balances.items()}


def _floor_decimal(ratio: Fraction) -> str:
    with localcontext() as ctx:
        ctx.prec = 200
        value = Decimal(ratio.numerator) / Decimal(ratio.denominator)
        return str(value.quantize(COVERAGE_PLACES, rounding=ROUND_FLOOR))


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def _observed(entry: dict | None) -> dict | None:
    if entry is None:
        return None
    # Keep what an auditor needs to find the reading on chain; the event's own bookkeeping stays out.
    # `block` is the EVM block number or the Solana slot the supply was read at; `ledger_position` the
    # ledger head it was compared with; `position` the observation's own event.
    keep = ("supply_base_units", "block", "block_hash", "observed_at", "ledger_position", "in_flight_base_units",
            "difference_base_units", "position")
    amounts = {"supply_base_units", "in_flight_base_units", "difference_base_units"}
    return {key: (str(entry[key]) if key in amounts else entry[key]) for key in keep if key in entry}


def _shares_by_ticker(fold: LogFold) -> dict[str, list[tuple[list[str], list[int]]]]:
    """custody/ and in_transit/ balances of shares, grouped by ticker once (not scanned per product)."""
    grouped: dict[str, list[tuple[list[str], list[int]]]] = {}
    for (path, asset), figures in sorted(fold.balances.items()):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] in ("custody", "in_transit") and asset == f"shares:{parts[2]}":
            grouped.setdefault(parts[2], []).append((parts, figures))
    return grouped


def _product(symbol: str, info: dict, fold: LogFold, shares: dict) -> dict:
    ticker = info["ticker"]
    custodians, committed, in_transit = [], 0, 0
    for parts, (posted, pending_in, pending_out) in shares.get(ticker, ()):
        if parts[0] == "custody":
            statement = fold.statements.get(parts[1])
            custodians.append({
                "custodian": parts[1], "shares_held_nano": str(posted),
                "statement": None if statement is None else {
                    "statement_ref": statement["statement_ref"], "as_of": statement["as_of"],
                    "sha256": statement["sha256"], "position": statement["position"],
                    "reported_nano": str(statement["holdings"].get(ticker, 0))}})
            committed += pending_out
        elif parts[0] == "in_transit":
            in_transit += pending_in + posted
    held = sum(int(c["shares_held_nano"]) for c in custodians)
    chains, tokens = [], Fraction(0)
    for chain, decimals in sorted(info["chains"].items()):
        posted, pending_in, pending_out = fold.balances.get((f"tokens/{chain}/{symbol}", f"tok:{symbol}:{chain}"),
                                                            (0, 0, 0))
        tokens += Fraction(posted + pending_in, 10**decimals)
        chains.append({"chain": chain, "decimals": decimals, "tokens_outstanding_base_units": str(posted),
                       "tokens_minting_base_units": str(pending_in), "tokens_burning_base_units": str(pending_out),
                       "observed_supply": _observed(fold.observed.get((symbol, chain)))})
    multiplier = Fraction(Decimal(info["multiplier"]))
    required = tokens * multiplier
    available = held - committed
    return {
        "symbol": symbol, "ticker": ticker, "multiplier": info["multiplier"], "custodians": custodians,
        "shares_held_nano": str(held), "shares_committed_out_nano": str(committed),
        "shares_available_nano": str(available), "shares_in_transit_nano": str(in_transit), "chains": chains,
        "shares_required_nano": str(_ceil(required * NANO)),
        "coverage": None if required == 0 else _floor_decimal(Fraction(available, NANO) / required),
    }


def build_payload(*, head_position: int, head_hash: str, head_recorded_at: str | None, fold: LogFold) -> dict:
    """The attested figures after the event at `head_position` (its hash and recorded_at given)."""
    shares = _shares_by_ticker(fold)
    products = [_product(symbol, info, fold, shares) for symbol, info in sorted(fold.products.items())]
    coverages = [Decimal(p["coverage"]) for p in products if p["coverage"] is not None]
    return {
        "format": FORMAT,
        "ledger_head": {"position": head_position, "hash": head_hash, "recorded_at": head_recorded_at},
        "products": products,
        "totals": {
            "products": len(products),
            "custodians": sorted({c["custodian"] for p in products for c in p["custodians"]}),
            "shares_held_nano": str(sum(int(p["shares_held_nano"]) for p in products)),
            "shares_in_transit_nano": str(sum(int(p["shares_in_transit_nano"]) for p in products)),
            "minimum_coverage": str(min(coverages)) if coverages else None,
            "undercovered": [p["symbol"] for p in products if p["coverage"] is not None and Decimal(p["coverage"]) < 1],
        },
    }


# --------------------------------------------------------------------------- signing

def canonical(value) -> bytes:
    return rfc8785.dumps(value)


def key_id(public_key: bytes) -> str:
    """A short, stable name for an Ed25519 public key (its raw 32 bytes)."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


def signed_bytes(document: dict) -> bytes:
    return canonical({k: v for k, v in document.items() if k != "signature"})


def encode_payload(payload: dict) -> bytes:
    """RFC 8785 bytes of a payload from `build_payload`, by the standard library's shortcut (about six
    times faster than the RFC 8785 library on a 400 kB payload). Valid because a payload is JSON-safe
    by construction: its integers are positions, block numbers, decimals and counts (event data is
    checked to stay within 2**53 when appended), its amounts are decimal strings and it has no floats;
    non-ASCII text (a statement reference, say) takes the library's path inside `encode`."""
    return ledger_canonical.encode(payload)


@dataclass(frozen=True)
class SignedDocument:
    """A signed attestation as its RFC 8785 bytes (what is stored, served and hashed) and its parts."""

    document_bytes: bytes
    attestation_id: str
    issued_at: str
    key_id: str
    signature: str

    def document(self, payload: dict) -> dict:
        """The document as a JSON value (for the ledger event), given the payload that was signed."""
        return {"issued_at": self.issued_at, "key_id": self.key_id, "payload": payload, "signature": self.signature}


def sign_encoded(payload_bytes: bytes, *, issued_at: str, signing_key) -> SignedDocument:
    """Sign a payload already encoded by `encode_payload`, without encoding it again. The document's
    keys sort issued_at < key_id < payload < signature (ASCII keys: the same order by UTF-16 unit) and
    its other values are strings encoded on their own, so the envelope's canonical bytes are the
    payload's spliced between them.
    `signing_key` is a nacl.signing.SigningKey."""
    signer = key_id(bytes(signing_key.verify_key))
    unsigned = b"".join((b'{"issued_at":', canonical(issued_at), b',"key_id":', canonical(signer),
                         b',"payload":', payload_bytes, b"}"))
    signature = base64.b64encode(signing_key.sign(unsigned).signature).decode("ascii")
    return SignedDocument(
        document_bytes=b"".join((unsigned[:-1], b',"signature":', canonical(signature), b"}")),
        attestation_id=hashlib.sha256(unsigned).hexdigest()[:32], issued_at=issued_at, key_id=signer,
        signature=signature)


def sign(payload: dict, *, issued_at: str, signing_key) -> dict:
    """The signed document as a JSON value. `signing_key` is a nacl.signing.SigningKey."""
    return sign_encoded(encode_payload(payload), issued_at=issued_at, signing_key=signing_key).document(payload)


def attestation_id(document: dict) -> str:
    """Content address: the first 128 bits of SHA-256 over the signed bytes."""
    return hashlib.sha256(signed_bytes(document)).hexdigest()[:32]


def verify_signature(document: dict, public_key: bytes) -> None:
    """Raise AttestationError unless `document` is signed by the Ed25519 key `public_key` (raw bytes)."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if not isinstance(document, dict) or set(document) != {"issued_at", "key_id", "payload", "signature"}:
        raise AttestationError("not an attestation document: expected issued_at, key_id, payload and signature")
    expected = key_id(public_key)
    if document["key_id"] != expected:
        raise AttestationError(f"signed by key {document['key_id']}, but the public key given is {expected}")
    try:
        signature = base64.b64decode(document["signature"], validate=True)
        VerifyKey(public_key).verify(signed_bytes(document), signature)
    except (BadSignatureError, ValueError, TypeError) as exc:
        raise AttestationError("signature does not verify: the document was altered or not signed by this key"
                               ) from exc


def first_difference(attested, recomputed, path: str = "payload") -> str | None:
    """The path of the first figure that differs between two payloads, with both values, or None."""
    if isinstance(attested, dict) and isinstance(recomputed, dict):
        for key in sorted(set(attested) | set(recomputed)):
            if key not in recomputed or key not in attested:
                return f"{path}.{key}: attested {attested.get(key)!r}, log gives {recomputed.get(key)!r}"
            found = first_difference(attested[key], recomputed[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(attested, list) and isinstance(recomputed, list):
        for index, (a, r) in enumerate(zip(attested, recomputed, strict=False)):
            found = first_difference(a, r, f"{path}[{index}]")
            if found:
                return found
        if len(attested) != len(recomputed):
            return f"{path}: attested {len(attested)} entries, log gives {len(recomputed)}"
        return None
    if attested != recomputed:
        return f"{path}: attested {attested!r}, log gives {recomputed!r}"
    return None
