"""Market-maker endpoints (own profile, wallets) and staff read-only endpoints. Thin: services decide."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import selectors, services
from compliance.api_auth import MarketMakerAuthentication
from compliance.idempotency import idempotent
from compliance.models import ComplianceCase, Participant
from compliance.permissions import HasTradeScope, IsMarketMaker, IsStaffReader
from compliance.serializers import (
    CaseSerializer,
    ParticipantSerializer,
    WalletChallengeSerializer,
    WalletCreateSerializer,
    WalletSerializer,
    WalletVerifySerializer,
)
from config.openapi import Refusal, refuses
from config.session_auth import VerifiedSessionAuthentication
from config.sql import partial

ALREADY_VERIFIED = Refusal(409, "wallet_already_verified", True, "this wallet is already verified",
                           "the wallet has already proven control of its address")


class MarketMakerView(APIView):
    authentication_classes = [MarketMakerAuthentication]
    permission_classes = [IsMarketMaker, HasTradeScope]

    def participant(self) -> Participant:
        return self.request.auth.participant

    def participant_ref(self) -> Participant:
        """The caller's participant with only its id loaded (any other field loads when read): for
        services that need just the id, without a query on every request."""
        return partial(Participant, ("id",), (self.request.auth.participant_id,))

    def actor(self) -> str:
        return f"participant:{self.request.auth.participant_id}"

    def wallet(self, wallet_id: int):
        wallet = selectors.wallet_of(participant=self.participant(), wallet_id=wallet_id)
        if wallet is None:
            raise Http404  # another participant's wallet is indistinguishable from a missing one
        return wallet


class ParticipantView(MarketMakerView):
    @extend_schema(responses=ParticipantSerializer, summary="The calling market maker's own profile")
    def get(self, request):
        return Response(ParticipantSerializer(self.participant()).data)


class WalletListView(MarketMakerView):
    @extend_schema(responses=WalletSerializer(many=True), summary="List own wallets")
    def get(self, request):
        return Response(WalletSerializer(selectors.wallets_of(participant=self.participant()), many=True).data)

    @extend_schema(request=WalletCreateSerializer, responses={201: WalletSerializer},
                   summary="Register a wallet (screened; must then prove control)")
    @refuses(Refusal(400, "invalid_address", False, "an EVM address is 0x followed by 40 hex digits",
                     "not an address on that chain"),
             Refusal(400, "address_not_checksummed", False, "EVM addresses must be given in EIP-55 checksummed form",
                     "an EVM address without its EIP-55 checksum"),
             Refusal(409, "wallet_already_registered", True, "this address is already registered",
                     "the address is registered already"))
    @idempotent
    def post(self, request):
        data = WalletCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wallet = services.wallet_register(participant=self.participant(), actor=self.actor(), **data.validated_data)
        return Response(WalletSerializer(wallet).data, status=status.HTTP_201_CREATED)


class WalletDetailView(MarketMakerView):
    @extend_schema(responses=WalletSerializer, summary="One own wallet")
    def get(self, request, wallet_id: int):
        return Response(WalletSerializer(self.wallet(wallet_id)).data)


class WalletChallengeView(MarketMakerView):
    @extend_schema(request=None, responses={201: WalletChallengeSerializer},
                   summary="Issue a message to sign with the wallet's key (valid 10 minutes)")
    @refuses(ALREADY_VERIFIED)
    @idempotent
    def post(self, request, wallet_id: int):
        challenge = services.wallet_challenge_issue(wallet=self.wallet(wallet_id))
        return Response(WalletChallengeSerializer(challenge).data, status=status.HTTP_201_CREATED)


class WalletVerifyView(MarketMakerView):
    @extend_schema(request=WalletVerifySerializer, responses=WalletSerializer,
                   summary="Prove control of the wallet by signing the latest challenge")
    @refuses(ALREADY_VERIFIED,
             Refusal(422, "challenge_expired", True, "request a new challenge first",
                     "no unused challenge younger than 10 minutes"),
             Refusal(422, "invalid_wallet_signature", True, "the signature does not prove control of this address",
                     "the signature is not the wallet's over the latest challenge"))
    @idempotent
    def post(self, request, wallet_id: int):
        data = WalletVerifySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wallet = services.wallet_verify(wallet=self.wallet(wallet_id), signature=data.validated_data["signature"],
                                        actor=self.actor())
        return Response(WalletSerializer(wallet).data)


class StaffView(APIView):
    authentication_classes = [VerifiedSessionAuthentication, MarketMakerAuthentication]
    permission_classes = [IsStaffReader]


class StaffParticipantListView(StaffView):
    @extend_schema(responses=ParticipantSerializer(many=True), summary="All participants (issuer staff, auditors)")
    def get(self, request):
        return Response(ParticipantSerializer(Participant.objects.order_by("id"), many=True).data)


class StaffCaseListView(StaffView):
    @extend_schema(responses=CaseSerializer(many=True), summary="Compliance cases (issuer staff, auditors)")
    def get(self, request):
        return Response(CaseSerializer(ComplianceCase.objects.order_by("-id"), many=True).data)
