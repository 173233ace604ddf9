"""The operations admin: queues per state, and buttons that call the same services as the API and
the tasks (so the lifecycle is enforced on every path). Each button checks a permission; approvals
check four eyes in the service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from compliance.admin_changes import ProposedChangesAdmin
from config import quantities
from config.api import DomainError
from ledger.errors import LedgerError
from mint_redeem import services, webhooks
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, allowed_events
from mint_redeem.models import (
    ChainOperation,
    DepositCase,
    MintRequest,
    ProductTerms,
    Redemption,
    WebhookDelivery,
    WebhookEndpoint,
)
from mint_redeem.selectors import request_history, with_decimals


def _tokens(amount, decimals: int | None, symbol: str | None) -> str:
    """A token amount in tokens beside its base units; the decimals come from the row's annotation
    (with_decimals), so a list of a hundred rows costs no query per row."""
    if decimals is None:  # no deployment of that token on that chain: only the base units mean anything
        return quantities.exact(amount, "base units")
    return quantities.tokens_html(amount, decimals, symbol)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class CashForm(forms.Form):
    amount_cents = forms.IntegerField(min_value=1, help_text="cents received at the bank")
    reference = forms.CharField(max_length=100, help_text="bank transfer reference")


class ConfirmationForm(forms.Form):
    confirmation = forms.CharField(max_length=100, help_text="custodian / bank / chain reference that proves it")


class NoForm(forms.Form):
    pass


# action name -> (label, form, permission suffix, service call)
MINT_ACTIONS = {
    "fund": ("Record cash received", CashForm, "change",
             lambda obj, data, user: services.mint_cash_record(mint=obj, amount_cents=data["amount_cents"],
                                                               reference=data["reference"], user=user)),
    "approve": ("Approve (four eyes)", NoForm, "approve",
                lambda obj, data, user: services.request_approve(request=obj, user=user)),
    "receive_shares": ("Record shares received (in kind)", ConfirmationForm, "change",
                       lambda obj, data, user: services.mint_shares_receive(
                           mint=obj, custodian_confirmation=data["confirmation"], user=user)),
    "advance": ("Run the automatic steps now", NoForm, "change",
                lambda obj, data, user: services.mint_advance(mint=obj, actor=f"user:{user.pk}")),
    "cancel": ("Cancel (refunds cash)", ReasonForm, "change",
               lambda obj, data, user: services.mint_cancel(mint=obj, actor=f"user:{user.pk}",
                                                            reason=data["reason"])),
    "receive_topup": ("Record top-up received", CashForm, "change",
                      lambda obj, data, user: services.mint_topup_record(
                          mint=obj, amount_cents=data["amount_cents"], reference=data["reference"], user=user)),
    "fail": ("Fail (refunds unspent cash; bought shares owed in kind)", ReasonForm, "change",
             lambda obj, data, user: services.mint_fail(mint=obj, actor=f"user:{user.pk}", reason=data["reason"])),
}

REDEMPTION_ACTIONS = {
    "receive_tokens": ("Record tokens received at the redemption address", ConfirmationForm, "change",
                       lambda obj, data, user: services.redemption_tokens_receive(
                           redemption=obj, tx_hash=data["confirmation"], actor=f"user:{user.pk}")),
    "approve": ("Approve (four eyes)", NoForm, "approve",
                lambda obj, data, user: services.request_approve(request=obj, user=user)),
    "advance": ("Run the automatic steps now", NoForm, "change",
                lambda obj, data, user: services.redemption_advance(redemption=obj, actor=f"user:{user.pk}")),
    "deliver_shares": ("Record shares delivered (in kind)", ConfirmationForm, "change",
                       lambda obj, data, user: services.redemption_shares_deliver(
                           redemption=obj, custodian_confirmation=data["confirmation"], user=user)),
    "pay_out": ("Record payout sent", ConfirmationForm, "change",
                lambda obj, data, user: services.redemption_payout_record(
                    redemption=obj, bank_reference=data["confirmation"], user=user)),
    "retry_sale": ("Retry the sale", NoForm, "change",
                   lambda obj, data, user: services.redemption_sale_retry(redemption=obj, user=user)),
    "cancel": ("Cancel", ReasonForm, "change",
               lambda obj, data, user: services.redemption_cancel(redemption=obj, actor=f"user:{user.pk}",
                                                                  reason=data["reason"])),
    "fail": ("Fail (the tokens' value stays owed)", ReasonForm, "change",
             lambda obj, data, user: services.redemption_fail(redemption=obj, actor=f"user:{user.pk}",
                                                              reason=data["reason"])),
}


class _RequestAdmin(admin.ModelAdmin):
    actions_map: dict = {}
    machine = MintLifecycle
    list_filter = ("state", "product", "chain", "needs_approval")
    search_fields = ("=id", "participant__legal_name", "wallet__address")
    list_select_related = ("participant", "product")
    change_form_template = "admin/mint_redeem/request_change_form.html"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # requests come from market makers through the API

    def has_delete_permission(self, request, obj=None):
        return False

    readable_fields: tuple[str, ...] = ("quantity", "tokens", "notional")

    def get_queryset(self, request):
        return with_decimals(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        # The readable figures first, then every stored field (the exact units) as it is.
        return [*self.readable_fields, *(f.name for f in self.model._meta.fields)]

    @admin.display(description="quantity", ordering="quantity_nano")
    def quantity(self, obj):
        return quantities.shares_html(obj.quantity_nano)

    @admin.display(description="tokens", ordering="token_base_units")
    def tokens(self, obj):
        return _tokens(obj.token_base_units, obj.decimals, obj.product.symbol)

    @admin.display(description="notional", ordering="notional_cents")
    def notional(self, obj):
        return quantities.usd_html(obj.notional_cents)

    def available_actions(self, request, obj) -> list[tuple[str, str]]:
        events = set(allowed_events(self.machine, obj.state, in_kind=obj.in_kind))
        offered = []
        for name, (label, _form, perm, _call) in self.actions_map.items():
            if name == "approve":
                if not (obj.needs_approval and obj.approved_by_id is None and obj.state not in ("cancelled", "failed")):
                    continue
            elif name == "advance":
                if obj.state in {s.id for s in self.machine.states if s.final}:
                    continue
            elif name not in events:
                continue
            if self._allowed(request, perm):
                offered.append((name, label))
        return offered

    def _allowed(self, request, perm: str) -> bool:
        codename = f"{perm}_{self.model._meta.model_name}"
        return request.user.has_perm(f"mint_redeem.{codename}")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = get_object_or_404(self.model, pk=object_id)
        extra_context = {**(extra_context or {}), "lifecycle_actions": self.available_actions(request, obj),
                         "history": request_history(request=obj)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [path("<int:pk>/act/<str:action>/", self.admin_site.admin_view(self.act_view),
                     name="{}_{}_act".format(*info)), *super().get_urls()]

    def act_view(self, request, pk: int, action: str):
        obj = get_object_or_404(self.model, pk=pk)
        if action not in self.actions_map:
            raise PermissionDenied
        label, form_class, perm, call = self.actions_map[action]
        if not self._allowed(request, perm):
            raise PermissionDenied
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                call(obj, form.cleaned_data, request.user)
            except (DomainError, LedgerError) as exc:
                self.message_user(request, f"{label}: refused ({getattr(exc, 'code', 'error')}): {exc}",
                                  messages.ERROR)
            else:
                self.message_user(request, f"{label}: done", messages.SUCCESS)
            info = self.model._meta.app_label, self.model._meta.model_name
            return redirect(reverse("admin:{}_{}_change".format(*info), args=[pk]))
        context = {**self.admin_site.each_context(request), "title": f"{label}: {obj}", "form": form, "obj": obj,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/mint_redeem/action_form.html", context)


@admin.register(MintRequest)
class MintRequestAdmin(_RequestAdmin):
    actions_map = MINT_ACTIONS
    machine = MintLifecycle
    list_display = ("id", "state", "participant", "product", "chain", "funding", "quantity", "tokens", "notional",
                    "needs_approval", "approved_by", "created_at")
    list_filter = ("state", "funding", "product", "chain", "needs_approval")
    readable_fields = (*_RequestAdmin.readable_fields, "cash_due", "cash_received", "cost", "fee")

    @admin.display(description="cash due")
    def cash_due(self, obj):
        return quantities.usd_html(obj.cash_due_cents)

    @admin.display(description="cash received")
    def cash_received(self, obj):
        return quantities.usd_html(obj.cash_received_cents)

    @admin.display(description="cost of the shares")
    def cost(self, obj):
        return "-" if obj.cost_cents is None else quantities.usd_html(obj.cost_cents)

    @admin.display(description="fee")
    def fee(self, obj):
        return quantities.usd_html(obj.fee_cents)


@admin.register(Redemption)
class RedemptionAdmin(_RequestAdmin):
    actions_map = REDEMPTION_ACTIONS
    machine = RedemptionLifecycle
    list_display = ("id", "state", "participant", "product", "chain", "payout", "quantity", "tokens", "notional",
                    "needs_approval", "approved_by", "created_at")
    list_filter = ("state", "payout", "product", "chain", "needs_approval")
    readable_fields = (*_RequestAdmin.readable_fields, "sold", "proceeds")

    @admin.display(description="shares sold")
    def sold(self, obj):
        return quantities.shares_html(obj.sold_quantity_nano)

    @admin.display(description="proceeds")
    def proceeds(self, obj):
        return "-" if obj.proceeds_cents is None else quantities.usd_html(obj.proceeds_cents)


@admin.register(ChainOperation)
class ChainOperationAdmin(admin.ModelAdmin):
    """Stuck and failed chain operations are visible here; they are executed only by the chain executor.
    A failed one can be sent again ("retry"), which checks the chain first and can never mint twice."""

    list_display = ("id", "kind", "chain", "product", "amount", "status", "attempts", "tx_hash",
                    "request_reference", "last_error", "created_at")
    list_select_related = ("product",)
    actions = ["retry_failed"]

    def get_queryset(self, request):
        return with_decimals(super().get_queryset(request))

    @admin.display(description="amount", ordering="amount_base_units")
    def amount(self, obj):
        return _tokens(obj.amount_base_units, obj.decimals, obj.product.symbol)

    @admin.action(description="Retry the selected failed operations (checked on chain first)",
                  permissions=["change"])
    def retry_failed(self, request, queryset):
        for operation in queryset.filter(status=ChainOperation.Status.FAILED):
            try:
                retried = services.chain_operation_retry(operation=operation, actor=f"user:{request.user.pk}")
                done = (f"done on chain by {retried.tx_hash}: followed to its confirmation"
                        if retried.status == ChainOperation.Status.BROADCAST else "queued again")
                self.message_user(request, f"{operation.request_reference}: {done}", messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, f"{operation.request_reference}: {exc}", messages.ERROR)
    list_filter = ("status", "kind", "chain")
    search_fields = ("request_reference", "tx_hash", "address")
    exclude = ("signed_tx",)

    def get_readonly_fields(self, request, obj=None):
        return ["amount", *(f.name for f in self.model._meta.fields if f.name != "signed_tx")]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DepositCase)
class DepositCaseAdmin(admin.ModelAdmin):
    """Redemptions seen on chain that match no waiting request: their tokens wait in the vault."""

    list_display = ("id", "status", "chain", "reference", "amount", "holder", "tx_hash", "problem",
                    "created_at")
    list_filter = ("status", "chain")
    search_fields = ("reference", "tx_hash", "holder")

    def get_queryset(self, request):
        return with_decimals(super().get_queryset(request))

    @admin.display(description="amount", ordering="amount_base_units")
    def amount(self, obj):
        return _tokens(obj.amount_base_units, obj.decimals, obj.symbol)

    def get_readonly_fields(self, request, obj=None):
        return ["amount", *(f.name for f in self.model._meta.fields if f.name not in ("status", "resolution"))]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProductTerms)
class ProductTermsAdmin(ProposedChangesAdmin):
    list_display = ("product", "broker", "custodian", "reference_price", "cash_buffer_bps", "fee_bps",
                    "approval_threshold")
    list_select_related = ("product", "broker", "custodian")

    @admin.display(description="approval above", ordering="approval_threshold_cents")
    def approval_threshold(self, obj):
        return quantities.usd_html(obj.approval_threshold_cents)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("id", "participant", "url", "active", "created_at")
    exclude = ("secret_encrypted",)  # never rendered
    readonly_fields = ("participant", "url", "created_at")

    def has_add_permission(self, request):
        return False  # participants register endpoints through the API and get the secret once


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "event_type", "endpoint", "status", "attempts", "last_status_code", "next_attempt_at",
                    "delivered_at")
    list_filter = ("status", "event_type")
    actions = ["redeliver"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver the selected webhooks", permissions=["change"])
    def redeliver(self, request, queryset):
        for delivery in queryset:
            webhooks.delivery_redeliver(delivery=delivery)
        self.message_user(request, f"{queryset.count()} deliveries queued again", messages.SUCCESS)
