"""API shapes. Quantities travel as decimal strings; base units and cents as strings/integers."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response

from config.api import StrictCharField
from config.converters import MAX_ID
from ledger.units import NANO
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, allowed_events
from mint_redeem.models import MintRequest, Redemption


@extend_schema_serializer(examples=[OpenApiExample(
    "Cash mint of 10 AAPLx on Ethereum", request_only=True,
    value={"product": "AAPLx", "chain": "ethereum", "quantity": "10", "wallet": 12, "funding": "cash"})])
class MintCreateSerializer(serializers.Serializer):
    product = serializers.CharField(min_length=1, max_length=16, help_text="token product symbol, e.g. AAPLx")
    chain = serializers.CharField(min_length=1, max_length=16, help_text="ethereum, arbitrum, base or solana")
    quantity = StrictCharField(min_length=1, max_length=40,
                               help_text="shares, as a decimal string (at most 9 decimals)")
    wallet = serializers.IntegerField(min_value=1, max_value=MAX_ID,
                                      help_text="id of one of your verified wallets on that chain")
    funding = serializers.ChoiceField(choices=MintRequest.Funding.choices)


@extend_schema_serializer(examples=[OpenApiExample(
    "Cash redemption of 5 AAPLx on Solana", request_only=True,
    value={"product": "AAPLx", "chain": "solana", "quantity": "5", "wallet": 13, "payout": "cash"})])
class RedemptionCreateSerializer(serializers.Serializer):
    product = serializers.CharField(min_length=1, max_length=16)
    chain = serializers.CharField(min_length=1, max_length=16)
    quantity = StrictCharField(min_length=1, max_length=40, help_text="shares, as a decimal string")
    wallet = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="the wallet the tokens are sent from")
    payout = serializers.ChoiceField(choices=Redemption.Payout.choices)


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class EventSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    version = serializers.IntegerField()
    type = serializers.CharField()
    recorded_at = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True)
    data = serializers.JSONField()
    hash = serializers.CharField()


class _RequestSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product.symbol")
    wallet = serializers.IntegerField(source="wallet_id")
    wallet_address = serializers.CharField(source="wallet.address")
    quantity = serializers.SerializerMethodField()
    token_base_units = serializers.CharField()
    allowed_actions = serializers.SerializerMethodField()

    def get_quantity(self, obj) -> str:
        return str(Decimal(obj.quantity_nano) / NANO)

    def get_allowed_actions(self, obj) -> list[str]:
        # What the market maker can do next through the API.
        machine = MintLifecycle if isinstance(obj, MintRequest) else RedemptionLifecycle
        return [e for e in allowed_events(machine, obj.state, in_kind=obj.in_kind) if e == "cancel"]


def _when(value) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text  # as DRF's DateTimeField writes it


def _request_body(obj) -> dict:
    machine = MintLifecycle if isinstance(obj, MintRequest) else RedemptionLifecycle
    return {
        "id": obj.pk, "state": obj.state, "product": obj.product.symbol, "chain": obj.chain, "wallet": obj.wallet_id,
        "wallet_address": obj.wallet.address, "quantity": str(Decimal(obj.quantity_nano) / NANO),
        "token_base_units": str(obj.token_base_units),
        "allowed_actions": [e for e in allowed_events(machine, obj.state, in_kind=obj.in_kind) if e == "cancel"],
    }


def mint_body(mint: MintRequest) -> dict:
    """What MintSerializer declares (for the schema), built directly: the API writes it on every mint
    request and list page, and DRF's per-object field machinery cost more than the rest of the request.
    A test holds the two equal."""
    body = _request_body(mint)
    body.update(funding=mint.funding, notional_cents=mint.notional_cents, cash_due_cents=mint.cash_due_cents,
                cash_received_cents=mint.cash_received_cents, cost_cents=mint.cost_cents, fee_cents=mint.fee_cents,
                topup_due_cents=_topup_due(mint), needs_approval=mint.needs_approval, reason=mint.reason, created_at=_when(mint.created_at),
                updated_at=_when(mint.updated_at))
    return {name: body[name] for name in MintSerializer.Meta.fields}


def redemption_body(redemption: Redemption) -> dict:
    """What RedemptionSerializer declares, built directly (as `mint_body`)."""
    from mint_redeem.services import redemption_address, redemption_instructions

    body = _request_body(redemption)
    body.update(payout=redemption.payout, notional_cents=redemption.notional_cents,
                proceeds_cents=redemption.proceeds_cents, redemption_address=redemption_address(redemption),
                redeem_on_chain=redemption_instructions(redemption),
                deposit_tx=redemption.deposit_tx, needs_approval=redemption.needs_approval, reason=redemption.reason,
                created_at=_when(redemption.created_at), updated_at=_when(redemption.updated_at))
    return {name: body[name] for name in RedemptionSerializer.Meta.fields}


def _topup_due(mint: MintRequest) -> int:
    from mint_redeem.services import mint_shortfall_cents

    return mint_shortfall_cents(mint) if mint.state == "topup_due" else 0


class MintSerializer(_RequestSerializer):
    topup_due_cents = serializers.SerializerMethodField(
        help_text="cents still due before a mint in topup_due goes on chain (the shares cost more than the "
                  "cash received covers)")

    def get_topup_due_cents(self, obj) -> int:
        return _topup_due(obj)

    class Meta:
        model = MintRequest
        fields = ["id", "state", "product", "chain", "wallet", "wallet_address", "quantity", "token_base_units",
                  "funding", "notional_cents", "cash_due_cents", "cash_received_cents", "cost_cents", "fee_cents",
                  "topup_due_cents", "needs_approval", "reason", "allowed_actions", "created_at", "updated_at"]


class MintDetailSerializer(MintSerializer):
    events = EventSerializer(many=True, read_only=True)

    class Meta(MintSerializer.Meta):
        fields = [*MintSerializer.Meta.fields, "events"]


class RedemptionSerializer(_RequestSerializer):
    redemption_address = serializers.SerializerMethodField()

    def get_redemption_address(self, obj) -> str:
        from mint_redeem.services import redemption_address

        return redemption_address(obj)

    redeem_on_chain = serializers.SerializerMethodField(
        help_text="EVM chains: call `function(amount, ref)` on `token` from the wallet; the tokens move to "
                  "`vault` with the reference. Solana: one transaction with `transfer_checked` of `amount` "
                  "(`decimals`) of `mint` to `destination` and a Memo instruction carrying `memo`.")

    def get_redeem_on_chain(self, obj) -> dict | None:
        from mint_redeem.services import redemption_instructions

        return redemption_instructions(obj)

    class Meta:
        model = Redemption
        fields = ["id", "state", "product", "chain", "wallet", "wallet_address", "quantity", "token_base_units",
                  "payout", "notional_cents", "proceeds_cents", "redemption_address", "redeem_on_chain", "deposit_tx",
                  "needs_approval", "reason", "allowed_actions", "created_at", "updated_at"]


class RedemptionDetailSerializer(RedemptionSerializer):
    events = EventSerializer(many=True, read_only=True)

    class Meta(RedemptionSerializer.Meta):
        fields = [*RedemptionSerializer.Meta.fields, "events"]


class DeploymentSerializer(serializers.Serializer):
    chain = serializers.CharField()
    address = serializers.CharField()
    decimals = serializers.IntegerField()


class ProductSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    ticker = serializers.CharField()
    name = serializers.CharField()
    multiplier = serializers.CharField()
    status = serializers.CharField()
    minting_paused = serializers.BooleanField()
    deployments = DeploymentSerializer(many=True)
    reserves = serializers.JSONField(help_text="shares held, in transit, tokens outstanding per chain, coverage")


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=500)


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    active = serializers.BooleanField()
    secret = serializers.CharField(required=False, help_text="shown once, at creation; not in a replay of "
                                                             "the same Idempotency-Key")


class OneTimeSecretResponse(Response):
    """A response whose body carries a secret this once. `data` holds everything but the secret, and
    `data` is what the idempotent response store (compliance.idempotency) keeps and replays, so the
    secret is never written there and a replay returns the rest without it. Only the body rendered for
    this response has it."""

    def __init__(self, data: dict, *, secret: str, **kwargs):
        super().__init__(data, **kwargs)
        self._secret = secret

    @property
    def rendered_content(self):
        data = self.data
        self.data = {**data, "secret": self._secret}
        try:
            return super().rendered_content
        finally:
            self.data = data


class SignatureCheckSerializer(serializers.Serializer):
    key_id = serializers.CharField()
    participant = serializers.IntegerField()
    scope = serializers.CharField()
    signature_alg = serializers.CharField()
