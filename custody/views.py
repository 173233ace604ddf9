"""Public reserve endpoints: attestations, their keys, each product's reserves. No authentication:
anyone may check the backing. Rate-limited per client address; cacheable (ETag, If-None-Match -> 304).
Documents are served as the exact RFC 8785 bytes that were signed, so what a client hashes or
verifies is what the issuer signed."""

from __future__ import annotations

import hashlib
import json

from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.views import APIView

from compliance.rate_limits import take_public
from compliance.schema import RATE_LIMITED
from config.openapi import Refusal, refuses
from custody import attestation_keys, selectors
from custody.attestations import AttestationRefusal, attestation_payload, attestation_sign_encoded
from ledger import attestation
from ledger.selectors import position_at

INVALID_AS_OF = Refusal(400, "invalid_as_of", False, "as_of must be an ISO 8601 instant with a UTC offset or a "
                        "log position", "as_of is neither an instant with an offset nor a log position, lies in the "
                        "future or beyond the ledger's head")
_NOT_MODIFIED = OpenApiResponse(description="Not Modified: the If-None-Match ETag is still current")
_DOCUMENT = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="A signed attestation: {issued_at, key_id, payload, signature}. The signature is Ed25519 (base64) "
                "over the RFC 8785 bytes of the document without `signature`; verify it offline with "
                "`python -m ledger.verify_attestation` (see the README's Auditors section).")


class PublicView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        take_public(request.META.get("REMOTE_ADDR", ""))

    def json(self, body: bytes, *, etag: str, cache: str = "public, max-age=60"):
        """`body` as is, or 304 when the client already holds this ETag."""
        if etag in {tag.strip() for tag in self.request.headers.get("If-None-Match", "").split(",")}:
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        response["Cache-Control"] = cache
        return response

    def document(self, attestation_id: str | None, *, cache: str = "public, max-age=60"):
        """An issued attestation's stored bytes; its id (the hash of what it signs) is a strong ETag."""
        body = None if attestation_id is None else selectors.attestation_document(attestation_id=attestation_id)
        if body is None:
            raise Http404
        return self.json(body, etag=f'"{attestation_id}"', cache=cache)


def _responses(ok=_DOCUMENT) -> dict:
    return {200: ok, 304: _NOT_MODIFIED}


class AttestationLatestView(PublicView):
    @extend_schema(responses=_responses(), summary="The latest reserve attestation (public)", tags=["attestations"])
    @refuses(RATE_LIMITED, Refusal(404, "not_found", False, "No such object.", "no attestation issued yet"))
    def get(self, request):
        return self.document(selectors.attestation_latest_id())


class AttestationDetailView(PublicView):
    @extend_schema(responses=_responses(), summary="One reserve attestation by id (public)", tags=["attestations"])
    @refuses(RATE_LIMITED)
    def get(self, request, attestation_id: str):  # the converter admits only 32 hex digits
        return self.document(attestation_id, cache="public, max-age=31536000, immutable")


def _as_of_position(value: str) -> int:
    value = value.strip()
    if value.isdigit() and len(value) <= 18:
        return int(value)
    try:
        instant = parse_datetime(value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise AttestationRefusal("as_of must be an ISO 8601 instant with a UTC offset (2026-01-02T15:04:05Z) "
                                 "or a log position (an integer)", retryable=False)
    if instant > timezone.now():
        raise AttestationRefusal("as_of lies in the future", code="invalid_as_of")
    return position_at(instant=instant)


class AttestationAsOfView(PublicView):
    @extend_schema(
        parameters=[OpenApiParameter("as_of", str, required=True, description=(
            "an ISO 8601 instant with a UTC offset, or a ledger log position"))],
        responses=_responses(), tags=["attestations"], operation_id="attestations_as_of",
        summary="The reserve attestation as of an instant or log position (public)",
        description="Computed from the log as of that point. When an attestation was issued of exactly that "
                    "point, it is returned as issued (the recomputation is byte for byte its payload); otherwise "
                    "the figures are signed now (`issued_at` is now, the payload is the past's).")
    @refuses(RATE_LIMITED, INVALID_AS_OF)
    def get(self, request):
        if "as_of" not in request.query_params:
            raise AttestationRefusal("as_of is required", code="invalid_as_of", retryable=False)
        position = _as_of_position(request.query_params["as_of"])
        issued = selectors.attestation_id_at_head(position=position)
        if issued is not None:
            return self.document(issued)
        payload_bytes = attestation.encode_payload(attestation_payload(position=position))
        signed = attestation_sign_encoded(payload_bytes=payload_bytes)
        # Weak: the figures (and so the ETag) are fixed, the issue time of this rendering is not.
        return self.json(signed.document_bytes, etag=f'W/"{hashlib.sha256(payload_bytes).hexdigest()[:32]}"')


class AttestationKeysView(PublicView):
    @extend_schema(responses=_responses(OpenApiResponse(response=OpenApiTypes.OBJECT, description=(
        "{keys: [{key_id, algorithm, status (current | retired), public_key_hex, public_key_pem}]}; "
        "the current key first. Save a key's public_key_pem as key.pem for the offline verifier."))),
        summary="The public keys attestations are signed with (public)", tags=["attestations"])
    @refuses(RATE_LIMITED)
    def get(self, request):
        keys = attestation_keys.published_keys(signer_keys_hex=selectors.attestation_signer_keys())
        body = json.dumps({"keys": [{"key_id": k.key_id, "algorithm": "Ed25519", "status": k.status,
                                     "public_key_hex": k.raw.hex(), "public_key_pem": k.pem} for k in keys]},
                          separators=(",", ":")).encode()
        return self.json(body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


class ProductReservesView(PublicView):
    @extend_schema(responses=_responses(OpenApiResponse(response=OpenApiTypes.OBJECT, description=(
        "{symbol, attestation_id, issued_at, ledger_head, reserves}: the product's figures in the latest "
        "attestation (verify them in the whole document)."))),
        summary="A product's reserves, from the latest attestation (public)", tags=["attestations"])
    @refuses(RATE_LIMITED)
    def get(self, request, symbol: str):
        row = selectors.attestation_latest()
        document = json.loads(row.document) if row is not None else None
        figures = next((p for p in document["payload"]["products"] if p["symbol"] == symbol), None) if document else None
        if figures is None:
            raise Http404
        body = json.dumps({"symbol": symbol, "attestation_id": row.attestation_id, "issued_at": document["issued_at"],
                           "ledger_head": document["payload"]["ledger_head"], "reserves": figures},
                          separators=(",", ":")).encode()
        return self.json(body, etag=f'"{row.attestation_id}-{hashlib.sha256(symbol.encode()).hexdigest()[:8]}"')
