from __future__ import annotations

from rest_framework import serializers

from compliance.models import Chain, ComplianceCase, Participant, Wallet, WalletChallenge


class ParticipantSerializer(serializers.ModelSerializer):
    blocked = serializers.SerializerMethodField()

    class Meta:
        model = Participant
        fields = ["id", "legal_name", "lei", "jurisdiction", "contact_name", "contact_email", "contact_phone",
                  "kyc_status", "kyc_approved_on", "kyc_expires_on", "kyc_review_on", "aml_risk", "blocked",
                  "min_request_cents", "max_request_cents", "daily_limit_cents"]
        read_only_fields = fields

    def get_blocked(self, obj: Participant) -> bool:
        return obj.sanctions_hold


class WalletSerializer(serializers.ModelSerializer):
    verified = serializers.BooleanField(read_only=True)
    blocked = serializers.BooleanField(source="sanctions_hold", read_only=True)

    class Meta:
        model = Wallet
        fields = ["id", "chain", "address", "label", "status", "verified", "verified_at", "frozen", "blocked",
                  "created_at"]
        read_only_fields = fields


class WalletCreateSerializer(serializers.Serializer):
    chain = serializers.ChoiceField(choices=Chain.choices)
    address = serializers.CharField(min_length=1, max_length=64)
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class WalletChallengeSerializer(serializers.ModelSerializer):
    wallet_id = serializers.IntegerField(read_only=True)
    scheme = serializers.SerializerMethodField()

    class Meta:
        model = WalletChallenge
        fields = ["wallet_id", "message", "nonce", "expires_at", "scheme"]
        read_only_fields = fields

    def get_scheme(self, obj: WalletChallenge) -> str:
        return "ed25519" if obj.wallet.chain == Chain.SOLANA else "eip191_personal_sign"


class WalletVerifySerializer(serializers.Serializer):
    signature = serializers.CharField(
        min_length=1, max_length=200, help_text="EVM: 0x-prefixed 65-byte personal_sign signature; Solana: base58 Ed25519")


class CaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = ComplianceCase
        fields = ["id", "participant", "wallet", "status", "summary", "opened_at", "decided_by", "decided_at",
                  "decision_reason"]
        read_only_fields = fields
