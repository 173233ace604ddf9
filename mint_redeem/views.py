"""The market-maker API: mints, redemptions, products, webhooks. Thin: services decide."""

from __future__ import annotations

import django_filters
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from compliance.idempotency import idempotent
from compliance.views import IDEMPOTENCY_HEADER, MarketMakerView
from config.api import validated
from custody.selectors import products_with_reserves
from mint_redeem import selectors, services, webhooks
from mint_redeem.models import MintRequest, Redemption, WebhookEndpoint
from mint_redeem.serializers import (
    CancelSerializer,
    ErrorSerializer,
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


def _error(description: str, code: str, message: str, *, retryable: bool) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description, examples=[
        OpenApiExample(code, value={"error": {"code": code, "message": message, "retryable": retryable}})])


CREATE_ERRORS = {
    400: _error("invalid input", "invalid_quantity", "quantity has more than 9 decimal places", retryable=False),
    401: _error("missing or bad API key or signature", "signature_invalid", "signature verification failed",
                retryable=False),
    403: _error("refused by a compliance gate", "kyc_expired", "this participant's KYC has expired", retryable=True),
    404: _error("unknown product or wallet", "unknown_wallet", "unknown wallet", retryable=True),
    409: _error("paused product, a concurrent change, Idempotency-Key reuse or a request in flight",
                "idempotency_key_reused", "this Idempotency-Key was used for a different request", retryable=False),
    422: _error("outside the participant's limits", "above_daily_limit",
                "this request would exceed the daily notional cap", retryable=True),
    503: _error("the database is unavailable for a moment", "database_unavailable",
                "the database is unavailable for a moment; send the request again", retryable=True),
}
ACTION_ERRORS = {
    404: _error("not one of your requests", "not_found", "Not found.", retryable=False),
    409: _error("not allowed in the request's current state, or changed by another request first",
                "transition_not_allowed", "cannot cancel a request that is minting", retryable=True),
}


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class _RequestFilter(django_filters.FilterSet):
    state = django_filters.CharFilter()
    product = django_filters.CharFilter(field_name="product__symbol")
    chain = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


class MintFilter(_RequestFilter):
    funding = django_filters.CharFilter()

    class Meta:
        model = MintRequest
        fields = ["state", "product", "chain", "funding"]


class RedemptionFilter(_RequestFilter):
    payout = django_filters.CharFilter()

    class Meta:
        model = Redemption
        fields = ["state", "product", "chain", "payout"]


LIST_PARAMETERS = [OpenApiParameter(name, str, description=desc) for name, desc in (
    ("state", "only requests in this state"), ("product", "product symbol"), ("chain", "chain name"),
    ("created_after", "ISO 8601 instant"), ("created_before", "ISO 8601 instant"),
    ("cursor", "opaque cursor from `next`/`previous`"), ("page_size", "1-200, default 50"))]


class _ListMixin:
    filterset_class: type
    body = staticmethod(mint_body)

    def paginated(self, request, queryset):
        queryset = self.filterset_class(request.query_params, queryset=queryset).qs
        paginator = NewestFirst()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([self.body(item) for item in page])


class MintListView(_ListMixin, MarketMakerView):
    filterset_class = MintFilter
    body = staticmethod(mint_body)

    @extend_schema(parameters=LIST_PARAMETERS, responses=MintSerializer(many=True), summary="Your mint requests")
    def get(self, request):
        return self.paginated(request, selectors.mints_of(participant_id=request.auth.participant_id))

    @extend_schema(request=MintCreateSerializer, responses={201: MintSerializer, **CREATE_ERRORS}, parameters=[IDEMPOTENCY_HEADER],
                   summary="Request a mint",
                   description="Compliance is checked now and again before the chain step. A cash mint "
                               "waits for `cash_due_cents` to arrive; orders go out when the market is open.")
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
    @extend_schema(responses={200: MintDetailSerializer, **ACTION_ERRORS}, summary="One mint request with its full event history")
    def get(self, request, mint_id: int):
        mint = _own(selectors.mints_of(participant_id=request.auth.participant_id), mint_id)
        events = EventSerializer(selectors.request_history(request=mint), many=True).data
        return Response({**mint_body(mint), "events": events})


class MintCancelView(MarketMakerView):
    @extend_schema(request=CancelSerializer, responses={200: MintSerializer, **ACTION_ERRORS},
                   parameters=[IDEMPOTENCY_HEADER],
                   summary="Cancel a mint (while requested, accepted or funded; cash is refunded)")
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

    @extend_schema(parameters=LIST_PARAMETERS, responses=RedemptionSerializer(many=True),
                   summary="Your redemption requests")
    def get(self, request):
        return self.paginated(request, selectors.redemptions_of(participant_id=request.auth.participant_id))

    @extend_schema(request=RedemptionCreateSerializer, responses={201: RedemptionSerializer, **CREATE_ERRORS},
                   parameters=[IDEMPOTENCY_HEADER], summary="Request a redemption",
                   description="On an EVM chain, call `redeem(amount, ref)` on the token as `redeem_on_chain` "
                               "says (the tokens move to `redemption_address`, the issuer's vault, with the "
                               "request's reference); once that is confirmed they are burned and the shares "
                               "sold (cash) or delivered (in kind). A deposit without the reference, or of "
                               "another amount, is not burned: it waits for operations.")
    @idempotent
    def post(self, request):
        body = validated(RedemptionCreateSerializer, request.data)
        redemption = services.redemption_request_create(
            participant=self.participant_ref(), product_symbol=body["product"], chain=body["chain"],
            quantity=body["quantity"], wallet_id=body["wallet"], payout=body["payout"], actor=self.actor(),
            idempotency_key=request.idempotency_key)
        return Response(redemption_body(redemption), status=status.HTTP_201_CREATED)


class RedemptionDetailView(MarketMakerView):
    @extend_schema(responses={200: RedemptionDetailSerializer, **ACTION_ERRORS}, summary="One redemption with its full event history")
    def get(self, request, redemption_id: int):
        redemption = _own(selectors.redemptions_of(participant_id=request.auth.participant_id), redemption_id)
        events = EventSerializer(selectors.request_history(request=redemption), many=True).data
        return Response({**redemption_body(redemption), "events": events})


class RedemptionCancelView(MarketMakerView):
    @extend_schema(request=CancelSerializer, responses={200: RedemptionSerializer, **ACTION_ERRORS},
                   parameters=[IDEMPOTENCY_HEADER],
                   summary="Cancel a redemption (before its tokens arrive)")
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
                   parameters=[IDEMPOTENCY_HEADER],
                   summary="Register a webhook endpoint (its signing secret is shown once)")
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
