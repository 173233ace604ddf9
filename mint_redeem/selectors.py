"""Reads for the market-maker API and the admin."""

from __future__ import annotations

from django.db.models import QuerySet

from ledger import selectors as ledger_selectors
from mint_redeem.models import MintRequest, Redemption


def mints_of(*, participant_id: int) -> QuerySet[MintRequest]:
    return MintRequest.objects.filter(participant_id=participant_id).select_related("product", "wallet")


def redemptions_of(*, participant_id: int) -> QuerySet[Redemption]:
    return Redemption.objects.filter(participant_id=participant_id).select_related("product", "wallet")


def request_history(*, request) -> list[dict]:
    """The request's full event history, straight from its ledger stream."""
    return [
        {"position": e.position, "version": e.version, "type": e.type, "recorded_at": e.recorded_at,
         "actor": e.metadata.get("actor"), "data": e.data, "hash": e.hash.hex()}
        for e in ledger_selectors.read_stream(stream=request.stream)
    ]
