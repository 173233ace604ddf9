"""The market-maker API: mints, redemptions, products, webhooks. Thin: services decide."""

from __future__ import annotations

import django_filters
from django.http import Http404
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from compliance.idempotency import idempotent
from compliance.views import MarketMakerView
from config.api import validated
from config.openapi import Refusal, refuses
from custody.selectors import backing_of, products_with_reserves
from mint_redeem import selectors, services, webhooks
from mint_redeem.models import MintRequest, Redemption, WebhookEndpoint
from mint_redeem.serializers import (
    CancelSerializer,
    EventSerializer,
    MintCreateSerializer,
    MintDetailSerializer,
    MintSerializer,
    OneTimeSecretResponse,
    ProductSerializer,
    RedemptionCreateSerializer,
    RedemptionDetailSerializer,
    RedemptionSerializer,
    SignatureCheckSerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
    mint_body,
    redemption_body,
)


# What the mint and redemption services refuse (config.openapi adds what every operation of its kind can
# meet: authentication, a malformed body, an Idempotency-Key reused, the database going away, ...).
def _request_error(status: int, code: str, message: str, when: str, *, retryable: bool = True) -> Refusal:
    return Refusal(status, code, retryable, message, when)


_GATES = [Refusal(403, code, True, message, "refused by the compliance gate: " + when) for code, message, when in (
    ("kyc_not_approved", "this participant's KYC is not approved", "KYC not approved"),
    ("kyc_expired", "this participant's KYC has expired", "KYC expired"),
    ("participant_blocked", "this participant is blocked pending a compliance review", "a sanctions hold"),
    ("wallet_sanctioned", "this wallet is blocked by sanctions screening", "the wallet is on a sanctions list"),
    ("wallet_frozen", "this wallet is frozen", "the wallet is frozen"),
    ("wallet_not_verified", "this wallet has not proven control of its address", "the wallet is not verified"),
)]
_LIMITS = [Refusal(422, code, True, message, when) for code, message, when in (
    ("below_minimum", "the minimum request is 10000 cents", "below the participant's minimum request"),
    ("above_request_limit", "the per-request cap is 100000000 cents", "above the participant's per-request cap"),
    ("above_daily_limit", "this request would exceed the daily notional cap",
     "above what is left of the participant's daily cap (New York's trading day)"),
)]
REQUEST_CREATE_REFUSALS = (
    _request_error(400, "invalid_quantity", "quantity has more than 9 decimal places",
                   "quantity is not a plain positive decimal of at most 9 decimals (final)", retryable=False),
    _request_error(400, "quantity_not_representable", "2.5 shares is not a whole number of AAPLx base units on solana",
                   "the quantity is not a whole number of the token's base units on that chain"),
    _request_error(400, "unknown_chain", "AAPLx is not deployed on 'base'", "the product is not on that chain"),
    _request_error(400, "product_not_offered", "AAPLx is not open for primary-market requests",
                   "the product takes no primary-market requests (on that chain)"),
    _request_error(400, "wallet_chain_mismatch", "wallet 12 is on solana, not ethereum",
                   "the wallet is on another chain (final)", retryable=False),
    _request_error(404, "unknown_product", "unknown product 'XYZx'", "no such product"),
    _request_error(404, "unknown_wallet", "unknown wallet", "no such wallet of yours"),
    *_GATES, *_LIMITS,
)
MINT_CREATE_REFUSALS = (
    *REQUEST_CREATE_REFUSALS,
    _request_error(409, "minting_paused", "minting of AAPLx is paused", "minting of the product is paused"),
)
CANCEL_REFUSALS = (
    _request_error(409, "transition_not_allowed", "cannot cancel a request that is minting",
                   "the request can no longer be cancelled (see `allowed_actions`)"),
)


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    cursor_query_description = "opaque cursor from `next` or `previous` (a cursor this list did not give is a 404)"
    page_size_query_description = "results per page, 1-200 (default 50)"


class _RequestFilter(django_filters.FilterSet):
    state = django_filters.CharFilter()
    product = django_filters.CharFilter(field_name="product__symbol")
    chain = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


class MintFilter(_RequestFilter):
    funding = django_filters.ChoiceFilter(choices=MintRequest.Funding.choices)

    class Meta:
        model = MintRequest
        fields = ["state", "product", "chain", "funding"]


class RedemptionFilter(_RequestFilter):
    payout = django_filters.ChoiceFilter(choices=Redemption.Payout.choices)

    class Meta:
        model = Redemption
        fields = ["state", "product", "chain", "payout"]


# The filters; `cursor` and `page_size` come from NewestFirst. A filter that does not parse is a 400.
LIST_PARAMETERS = [OpenApiParameter(name, kind, description=desc) for name, kind, desc in (
    ("state", str, "only requests in this state"), ("product", str, "product symbol"),
    ("chain", str, "chain name"), ("created_after", OpenApiTypes.DATETIME, "ISO 8601 instant (inclusive)"),
    ("created_before", OpenApiTypes.DATETIME, "ISO 8601 instant (exclusive)"))]
MINT_LIST_PARAMETERS = [*LIST_PARAMETERS, OpenApiParameter("funding", str, enum=MintRequest.Funding.values,
                                                           description="cash or in kind")]
REDEMPTION_LIST_PARAMETERS = [*LIST_PARAMETERS, OpenApiParameter("payout", str, enum=Redemption.Payout.values,
                                                                 description="cash or in kind")]


class _ListMixin:
    filterset_class: type
    pagination_class = NewestFirst  # also how the schema knows the answer is a page, not an array
    body = staticmethod(mint_body)

    def paginated(self, request, queryset):
        filterset = self.filterset_class(request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)  # 400 `invalid`, each filter's problem in `details`
        queryset = filterset.qs
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([self.body(item) for item in page])


class MintListView(_ListMixin, MarketMakerView):
    filterset_class = MintFilter
    body = staticmethod(mint_body)

    @extend_schema(parameters=MINT_LIST_PARAMETERS, responses=MintSerializer(many=True), summary="Your mint requests")
    def get(self, request):
        return self.paginated(request, selectors.mints_of(participant_id=request.auth.participant_id))

    @extend_schema(request=MintCreateSerializer, responses={201: MintSerializer}, summary="Request a mint",
                   description="Compliance is checked now and again before the chain step. A cash mint "
                               "waits for `cash_due_cents` to arrive; orders go out when the market is open.")
    @refuses(*MINT_CREATE_REFUSALS)
    @idempotent
    def post(self, request):
        body = validated(MintCreateSerializer, request.data)
        mint = services.mint_request_create(
            participant=self.participant_ref(), product_symbol=body["product"], chain=body["chain"],
            quantity=body["quantity"], wallet_id=body["wallet"], funding=body["funding"], actor=self.actor(),
            idempotency_key=request.idempotency_key)
        return Response(mint_body(mint), status=status.HTTP_201_CREATED)


def _own(queryset, pk):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404  # someone else's request looks exactly like a missing one
    return obj


class MintDetailView(MarketMakerView):
    @extend_schema(responses=MintDetailSerializer, summary="One mint request with its full event history")
    def get(self, request, mint_id: int):
        mint = _own(selectors.mints_of(participant_id=request.auth.participant_id), mint_id)
        events = EventSerializer(selectors.request_history(request=mint), many=True).data
        return Response({**mint_body(mint), "events": events})


class MintBackingView(MarketMakerView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="What backs one of your mints: broker fills and "
                   "custodian statement lines",
                   description="{mint_id, product, fills: [{broker, broker_fill_id, quantity_nano, price, executed_at, "
                               "trade_date, settlement_date, status, statement_line}], in_kind_transfers: [{custodian, "
                               "quantity_nano, custodian_confirmation, statement_line}]}. `statement_line` is the first "
                               "custodian statement on or after settlement that lists the shares (null until imported).")
    def get(self, request, mint_id: int):
        mint = _own(selectors.mints_of(participant_id=request.auth.participant_id), mint_id)
        backing = backing_of(broker_order_id=mint.broker_order_id, transfer_reference=mint.stream)
        return Response({"mint_id": mint.pk, "product": mint.product.symbol, **backing})


class MintCancelView(MarketMakerView):
    @extend_schema(request=CancelSerializer, responses=MintSerializer,
                   summary="Cancel a mint (while requested, accepted or funded; cash is refunded)")
    @refuses(*CANCEL_REFUSALS)
    @idempotent
    def post(self, request, mint_id: int):
        mint = _own(selectors.mints_of(participant_id=request.auth.participant_id), mint_id)
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mint = services.mint_cancel(mint=mint, actor=self.actor(), reason=body.validated_data["reason"])
        return Response(mint_body(mint))


class RedemptionListView(_ListMixin, MarketMakerView):
    filterset_class = RedemptionFilter
    body = staticmethod(redemption_body)

    @extend_schema(parameters=REDEMPTION_LIST_PARAMETERS, responses=RedemptionSerializer(many=True),
                   summary="Your redemption requests")
    def get(self, request):
        return self.paginated(request, selectors.redemptions_of(participant_id=request.auth.participant_id))

    @extend_schema(request=RedemptionCreateSerializer, responses={201: RedemptionSerializer},
                   summary="Request a redemption",
                   description="On an EVM chain, call `redeem(amount, ref)` on the token as `redeem_on_chain` "
                               "says (the tokens move to `redemption_address`, the issuer's vault, with the "
                               "request's reference); once that is confirmed they are burned and the shares "
                               "sold (cash) or delivered (in kind). A deposit without the reference, or of "
                               "another amount, is not burned: it waits for operations.")
    @refuses(*REQUEST_CREATE_REFUSALS)
    @idempotent
    def post(self, request):
        body = validated(RedemptionCreateSerializer, request.data)
        redemption = services.redemption_request_create(
            participant=self.participant_ref(), product_symbol=body["product"], chain=body["chain"],
            quantity=body["quantity"], wallet_id=body["wallet"], payout=body["payout"], actor=self.actor(),
            idempotency_key=request.idempotency_key)
        return Response(redemption_body(redemption), status=status.HTTP_201_CREATED)


class RedemptionDetailView(MarketMakerView):
    @extend_schema(responses=RedemptionDetailSerializer, summary="One redemption with its full event history")
    def get(self, request, redemption_id: int):
        redemption = _own(selectors.redemptions_of(participant_id=request.auth.participant_id), redemption_id)
        events = EventSerializer(selectors.request_history(request=redemption), many=True).data
        return Response({**redemption_body(redemption), "events": events})


class RedemptionCancelView(MarketMakerView):
    @extend_schema(request=CancelSerializer, responses=RedemptionSerializer,
                   summary="Cancel a redemption (before its tokens arrive)")
    @refuses(*CANCEL_REFUSALS)
    @idempotent
    def post(self, request, redemption_id: int):
        redemption = _own(selectors.redemptions_of(participant_id=request.auth.participant_id), redemption_id)
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        redemption = services.redemption_cancel(redemption=redemption, actor=self.actor(),
                                                reason=body.validated_data["reason"])
        return Response(redemption_body(redemption))


class ProductListView(MarketMakerView):
    @extend_schema(responses=ProductSerializer(many=True),
                   summary="Products: per-chain addresses, multiplier, status and live reserve coverage")
    def get(self, request):
        rows = [{
            "symbol": row.product.symbol, "ticker": row.product.security.ticker, "name": row.product.security.name,
            "multiplier": str(row.product.multiplier), "status": row.product.status,
            "minting_paused": row.minting_paused,
            "deployments": [{"chain": d.chain, "address": d.address, "decimals": d.decimals}
                            for d in row.product.deployments.all()],
            "reserves": row.reserves.as_dict(),
        } for row in products_with_reserves()]
        return Response(ProductSerializer(rows, many=True).data)


class WebhookListView(MarketMakerView):
    @extend_schema(responses=WebhookSerializer(many=True), summary="Your webhook endpoints")
    def get(self, request):
        endpoints = WebhookEndpoint.objects.filter(participant_id=request.auth.participant_id).order_by("id")
        return Response([{"id": e.id, "url": e.url, "active": e.active} for e in endpoints])

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookSerializer},
                   summary="Register a webhook endpoint (its signing secret is shown once)")
    @refuses(Refusal(400, "invalid_webhook_url", True, "webhook URLs must use https",
                     "not https, carries credentials, or does not resolve (in time) to public addresses only"),
             Refusal(409, "too_many_webhook_endpoints", True, "at most 5 active webhook endpoints per participant",
                     "the participant has the most active endpoints allowed"))
    @idempotent
    def post(self, request):
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, secret = webhooks.endpoint_register(participant=self.participant(), url=body.validated_data["url"])
        return OneTimeSecretResponse({"id": endpoint.id, "url": endpoint.url, "active": endpoint.active},
                                     secret=secret, status=status.HTTP_201_CREATED)


class SignatureCheckView(MarketMakerView):
    """Lets a market maker test its API key and RFC 9421 signing end to end without changing anything
    (and gives the API benchmark the framework's ceiling: the full authentication path, no work)."""

    @extend_schema(request=None, responses=SignatureCheckSerializer,
                   summary="Check your API key and request signature (no effect, no Idempotency-Key needed)")
    def post(self, request):
        key = request.auth
        return Response({"key_id": key.key_id, "participant": key.participant_id, "scope": key.scope,
                         "signature_alg": key.signature_alg})
