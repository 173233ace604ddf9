"""Reads of compliance state."""

from __future__ import annotations

from django.db.models import QuerySet

from compliance.models import ComplianceCase, MarketMakerUser, Participant, Wallet


def participant_for_user(*, user) -> Participant | None:
    link = MarketMakerUser.objects.select_related("participant").filter(user_id=getattr(user, "id", None)).first()
    return link.participant if link else None


def wallets_of(*, participant: Participant) -> QuerySet[Wallet]:
    return Wallet.objects.filter(participant=participant).order_by("id")


def wallet_of(*, participant: Participant, wallet_id: int) -> Wallet | None:
    """A wallet only if it belongs to `participant`; another participant's wallet reads as absent."""
    return Wallet.objects.filter(participant=participant, pk=wallet_id).first()


def open_cases() -> QuerySet[ComplianceCase]:
    return ComplianceCase.objects.filter(status="open").select_related("participant", "wallet", "screening")
