"""Operations screens for custody: products with live reserves and coverage, brokers, orders and
fills, custodians and statements (with upload), reconciliation and supply breaks (with resolution),
observed on-chain supply.

Everything that the ledger records goes through custody.services; the admin never edits those rows
directly (orders, fills, statements, breaks and transfers are read-only here)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from compliance.admin_changes import ProposedChangesAdmin
from compliance.reference_changes import reference_change_propose
from config import quantities
from config.api import DomainError
from custody import calendar, services
from custody.attestations import attestation_issue
from custody.models import (
    Attestation,
    Broker,
    BrokerOrder,
    ChainDeployment,
    Custodian,
    CustodyAccount,
    Fill,
    InKindTransfer,
    ReconciliationBreak,
    ReconciliationRun,
    Security,
    SimulatedPrice,
    Statement,
    StatementHolding,
    SupplyBreak,
    SupplyObservation,
    TokenProduct,
)
from custody.reserves import all_reserves
from custody.statements import MAX_STATEMENT_BYTES, detect_format
from ledger.admin import ReadOnlyAdmin
from ledger.errors import StreamVersionConflict


def _actor(request) -> str:
    return f"user:{request.user.pk}"


_shares = quantities.shares_html


class FixedIdentifiersAdmin(ProposedChangesAdmin):
    """The ledger names accounts after `fixed_fields` (custody/<custodian>/<TICKER>, tokens/<chain>/<SYMBOL>,
    ...): they are set when a row is added and only shown afterwards. The database refuses a change
    anyway (custody migration 0003); this keeps the form from offering one."""

    fixed_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            return readonly
        return readonly + tuple(name for name in self.fixed_fields if name not in readonly)


@admin.register(Security)
class SecurityAdmin(FixedIdentifiersAdmin):
    fixed_fields = ("ticker",)
    list_display = ("ticker", "isin", "cusip", "exchange_mic", "name")
    search_fields = ("ticker", "isin", "cusip", "name")

    def has_delete_permission(self, request, obj=None):
        return False


class ChainDeploymentForm(forms.ModelForm):
    class Meta:
        model = ChainDeployment
        fields = ("chain", "decimals", "address", "deployed_block")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Registered deployments are fixed (decimals give meaning to base units already on the ledger).
            for field in self.fields.values():
                field.disabled = True


class ChainDeploymentInline(admin.TabularInline):
    model = ChainDeployment
    form = ChainDeploymentForm
    extra = 0
    can_delete = False


@admin.register(TokenProduct)
class TokenProductAdmin(FixedIdentifiersAdmin):
    fixed_fields = ("symbol",)
    list_display = ("symbol", "security", "multiplier", "status", "minting", "shares_held", "shares_in_transit",
                    "tokens_outstanding", "coverage")
    list_filter = ("status",)
    search_fields = ("symbol", "security__ticker")
    inlines = [ChainDeploymentInline]
    actions = ["pause_minting", "resume_minting"]
    readonly_fields = ("status", "reserves_detail")

    def get_readonly_fields(self, request, obj=None):
        # Once tokens may exist, the security and multiplier change only through a corporate-action process.
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "security", "multiplier") if obj else readonly

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        reserves = all_reserves(list(changelist.result_list))
        for product in changelist.result_list:
            product._reserves = reserves[product.id]
        return changelist

    def _figures(self, obj):
        if not hasattr(obj, "_reserves"):
            obj._reserves = all_reserves([obj])[obj.id]
        return obj._reserves

    @admin.display(description="minting")
    def minting(self, obj):
        if obj.status == TokenProduct.Status.PAUSED:
            return "paused"
        return "paused (break)" if obj.minting_paused_by_break else "open"

    @admin.display(description="shares held")
    def shares_held(self, obj):
        figures = self._figures(obj)
        held = sorted(figures.shares_held_nano_by_custodian.items())
        return format_html_join(mark_safe("<br>"), "{}: {}", ((c, _shares(q)) for c, q in held)) or _shares(0)

    @admin.display(description="in transit")
    def shares_in_transit(self, obj):
        return _shares(self._figures(obj).shares_in_transit_nano)

    @admin.display(description="tokens outstanding")
    def tokens_outstanding(self, obj):
        figures = self._figures(obj)
        return format_html_join(mark_safe("<br>"), "{}: {}", (
            (c, quantities.tokens_html(o.total_base_units, o.decimals, obj.symbol))
            for c, o in sorted(figures.tokens_by_chain.items())))

    @admin.display(description="coverage")
    def coverage(self, obj):
        value = self._figures(obj).coverage
        if value is None:
            return "-"
        css_class = "coverage-ok" if value >= 1 else "coverage-short"  # config/static/config/admin.css
        return format_html('<span class="{}">{}</span>', css_class, f"{value:.6f}")

    @admin.display(description="reserves")
    def reserves_detail(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(self._figures(obj).as_dict(), indent=2))

    def save_model(self, request, obj, form, change):
        if change:
            # Only reference fields (tolerance) are editable here; status and multiplier go through services.
            super().save_model(request, obj, form, change)
            return
        registered = services.product_register(symbol=obj.symbol, security=obj.security, actor=_actor(request),
                                               multiplier=obj.multiplier,
                                               break_tolerance_nano=obj.break_tolerance_nano)
        obj.pk, obj.created_at = registered.pk, registered.created_at
        obj._state.adding, obj._state.db = False, registered._state.db

    def save_formset(self, request, form, formset, change):
        for deployment in formset.save(commit=False):
            if deployment.pk is None:
                services.deployment_register(product=form.instance, chain=deployment.chain,
                                             decimals=deployment.decimals, address=deployment.address,
                                             actor=_actor(request))

    @admin.action(description="Pause minting of the selected products", permissions=["change"])
    def pause_minting(self, request, queryset):
        for product in queryset:
            services.product_status_set(product=product, status="paused", reason="paused from admin",
                                        actor=_actor(request))

    @admin.action(description="Propose resuming minting of the selected products (a second person applies it)",
                  permissions=["change"])
    def resume_minting(self, request, queryset):
        # Pausing is immediate (the safe direction); resuming takes a second person.
        for product in queryset:
            try:
                change = reference_change_propose(target=product, changes={"status": "active"},
                                                  reason=f"resume minting of {product.symbol} (admin)",
                                                  user=request.user)
                self.message_user(request, f"{product.symbol}: change {change.pk} proposed")
            except DomainError as exc:
                self.message_user(request, f"{product.symbol}: {exc.code}: {exc.message}", messages.ERROR)


class SimulatedPriceInline(admin.TabularInline):
    model = SimulatedPrice
    extra = 0


@admin.register(Broker)
class BrokerAdmin(FixedIdentifiersAdmin):
    fixed_fields = ("code",)
    list_display = ("code", "name", "kind", "settlement_days", "custodian")
    inlines = [SimulatedPriceInline]


class CustodyAccountInline(admin.TabularInline):
    """New accounts are added here; an existing account changes by proposal (Reference changes)."""

    model = CustodyAccount
    extra = 0
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Custodian)
class CustodianAdmin(FixedIdentifiersAdmin):
    fixed_fields = ("code",)
    list_display = ("code", "name", "bic")
    inlines = [CustodyAccountInline]


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    can_delete = False
    fields = ("broker_fill_id", "quantity_nano", "price", "gross_cents", "fee_cents", "executed_at", "trade_date",
              "settlement_date", "status")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BrokerOrder)
class BrokerOrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "client_order_id", "broker", "security", "side", "quantity", "filled", "status",
                    "created_at")
    list_filter = ("status", "side", "broker")
    search_fields = ("client_order_id", "broker_order_id", "security__ticker")
    inlines = [FillInline]
    actions = ["sync_orders", "cancel_orders"]

    @admin.display(description="quantity")
    def quantity(self, obj):
        return _shares(obj.quantity_nano)

    @admin.display(description="filled")
    def filled(self, obj):
        return _shares(obj.filled_quantity_nano)

    # Orders and fills are records (read-only forms); acting on them at the broker is operations' job.
    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("custody.change_brokerorder")

    @admin.action(description="Fetch fills from the broker", permissions=["operate"])
    def sync_orders(self, request, queryset):
        for order in queryset:
            try:
                fills = services.order_sync(order=order, actor=_actor(request))
                self.message_user(request, f"order {order.id}: {len(fills)} new fill(s)")
            except DomainError as exc:
                self.message_user(request, f"order {order.id}: {exc.code}: {exc.message}", messages.ERROR)

    @admin.action(description="Cancel at the broker", permissions=["operate"])
    def cancel_orders(self, request, queryset):
        for order in queryset:
            try:
                services.order_cancel(order=order, actor=_actor(request))
            except DomainError as exc:
                self.message_user(request, f"order {order.id}: {exc.code}: {exc.message}", messages.ERROR)


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = ("id", "order", "quantity", "price", "gross", "fee", "trade_date", "settlement_date",
                    "status")
    list_filter = ("status", "settlement_date")
    actions = ["settle_due"]

    @admin.display(description="quantity")
    def quantity(self, obj):
        return _shares(obj.quantity_nano)

    @admin.display(description="gross", ordering="gross_cents")
    def gross(self, obj):
        return quantities.usd_html(obj.gross_cents)

    @admin.display(description="fee", ordering="fee_cents")
    def fee(self, obj):
        return quantities.usd_html(obj.fee_cents)

    def has_settle_permission(self, request) -> bool:
        return request.user.has_perm("custody.change_fill")

    @admin.action(description="Settle every fill due today (New York date)", permissions=["settle"])
    def settle_due(self, request, queryset):
        count = services.fills_settle_due(today=calendar.trade_date_of(timezone.now()), actor=_actor(request))
        self.message_user(request, f"{count} fill(s) settled")


class StatementHoldingInline(admin.TabularInline):
    model = StatementHolding
    extra = 0
    can_delete = False
    fields = ("security", "quantity")
    readonly_fields = fields

    @admin.display(description="quantity")
    def quantity(self, obj):
        return _shares(obj.quantity_nano)

    def has_add_permission(self, request, obj=None):
        return False


class StatementUploadForm(forms.Form):
    file = forms.FileField(help_text="ISO 20022 semt.002 XML or CSV (statement_id,account,as_of,isin,ticker,quantity)")
    format = forms.ChoiceField(choices=[("", "detect"), ("semt002", "semt.002 XML"), ("csv", "CSV")], required=False)
    account = forms.ModelChoiceField(CustodyAccount.objects.all(), required=False,
                                     help_text="refuse the file unless it is for this account")


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ("statement_ref", "account", "as_of", "format", "imported_by", "imported_at", "ledger_position")
    list_filter = ("format", "account__custodian")
    inlines = [StatementHoldingInline]
    change_list_template = "admin/custody/statement/change_list.html"

    def get_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="custody_statement_upload"),
                *super().get_urls()]

    def upload_view(self, request):
        if not request.user.has_perm("custody.add_statement"):
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_STATEMENT_BYTES:
                form.add_error("file", f"larger than {MAX_STATEMENT_BYTES} bytes")
            else:
                content = upload.read()
                fmt = form.cleaned_data["format"] or detect_format(upload.name, content)
                try:
                    result = services.statement_import(content=content, format=fmt, actor=_actor(request),
                                                       file_name=upload.name, account=form.cleaned_data["account"])
                except DomainError as exc:
                    form.add_error("file", f"{exc.code}: {exc.message}")
                else:
                    verb = "Imported" if result.created else "Already imported (nothing changed):"
                    self.message_user(request, f"{verb} statement {result.statement.statement_ref}")
                    return redirect(reverse("admin:custody_statement_change", args=[result.statement.pk]))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Upload a custodian statement",
                   "opts": self.model._meta}
        return render(request, "admin/custody/statement/upload.html", context)


class BreakResolveForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea, min_length=5, help_text="why the difference is acceptable or "
                             "how it was corrected; recorded in the ledger")


def _resolve_view(model_admin, request, item, *, resolve, title: str):
    """A break's resolution page: a reason, then the service (custody or supply break alike)."""
    opts = model_admin.model._meta
    if not request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"):
        raise PermissionDenied
    form = BreakResolveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            resolve(break_=item, reason=form.cleaned_data["reason"], actor=_actor(request))
        except DomainError as exc:
            form.add_error("reason", f"{exc.code}: {exc.message}")
        else:
            model_admin.message_user(request, f"{opts.verbose_name} {item.id} resolved")
            return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    context = {**model_admin.admin_site.each_context(request), "form": form, "item": item, "opts": opts,
               "title": title}
    return render(request, f"admin/{opts.app_label}/{opts.model_name}/resolve.html", context)


@admin.register(ReconciliationBreak)
class ReconciliationBreakAdmin(ReadOnlyAdmin):
    list_display = ("id", "custodian", "security", "expected", "reported", "difference", "age", "blocks_minting",
                    "status", "resolve_link")
    list_filter = ("status", "blocks_minting", "custodian")
    search_fields = ("security__ticker",)

    @admin.display(description="expected")
    def expected(self, obj):
        return _shares(obj.expected_nano)

    @admin.display(description="reported")
    def reported(self, obj):
        return _shares(obj.reported_nano)

    @admin.display(description="difference")
    def difference(self, obj):
        return _shares(obj.difference_nano)

    @admin.display(description="age")
    def age(self, obj):
        end = obj.resolved_at or timezone.now()
        hours = int((end - obj.detected_at).total_seconds() // 3600)
        return f"{hours // 24}d {hours % 24}h"

    @admin.display(description="")
    def resolve_link(self, obj):
        if obj.status != ReconciliationBreak.Status.OPEN:
            return obj.resolution_reason[:60]
        return format_html('<a href="{}">resolve</a>', reverse("admin:custody_break_resolve", args=[obj.pk]))

    def get_urls(self):
        return [path("<int:pk>/resolve/", self.admin_site.admin_view(self.resolve_view), name="custody_break_resolve"),
                path("run/", self.admin_site.admin_view(self.run_view), name="custody_reconciliation_run"),
                *super().get_urls()]

    def run_view(self, request):
        if request.method != "POST" or not request.user.has_perm("custody.change_reconciliationbreak"):
            raise PermissionDenied
        self.run_reconciliation(request, ReconciliationBreak.objects.none())
        return redirect(reverse("admin:custody_reconciliationbreak_changelist"))

    def resolve_view(self, request, pk: int):
        item = get_object_or_404(ReconciliationBreak, pk=pk)
        return _resolve_view(self, request, item, resolve=services.break_resolve,
                             title=f"Resolve break {item.id}: {item.custodian.code} {item.security.ticker}")

    def run_reconciliation(self, request, queryset):
        run = services.reconciliation_run(actor=_actor(request))
        self.message_user(request, f"reconciliation {run.id}: {run.pairs_checked} positions checked, "
                                   f"{run.breaks_opened} new break(s), {run.breaks_cleared} cleared")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "started_at", "actor", "pairs_checked", "breaks_opened", "breaks_cleared", "ledger_position")


@admin.register(InKindTransfer)
class InKindTransferAdmin(ReadOnlyAdmin):
    list_display = ("id", "direction", "custodian", "security", "quantity_nano", "counterparty_account", "reference",
                    "custodian_confirmation", "created_at")
    list_filter = ("direction", "custodian")


@admin.register(SupplyObservation)
class SupplyObservationAdmin(ReadOnlyAdmin):
    list_display = ("id", "product", "chain", "block", "supply_base_units", "ledger_outstanding_base_units",
                    "in_flight_base_units", "difference_base_units", "ledger_position", "observed_at")
    list_filter = ("chain", "product")


@admin.register(SupplyBreak)
class SupplyBreakAdmin(ReadOnlyAdmin):
    list_display = ("id", "product", "chain", "block", "supply_base_units", "ledger_outstanding_base_units",
                    "in_flight_base_units", "unexplained_base_units", "status", "detected_at", "resolve_link")
    list_filter = ("status", "chain")
    search_fields = ("product__symbol",)

    @admin.display(description="")
    def resolve_link(self, obj):
        if obj.status != SupplyBreak.Status.OPEN:
            return obj.resolution_reason[:60]
        return format_html('<a href="{}">resolve</a>', reverse("admin:custody_supply_break_resolve", args=[obj.pk]))

    def get_urls(self):
        return [path("<int:pk>/resolve/", self.admin_site.admin_view(self.resolve_view),
                     name="custody_supply_break_resolve"), *super().get_urls()]

    def resolve_view(self, request, pk: int):
        item = get_object_or_404(SupplyBreak.objects.select_related("product"), pk=pk)
        return _resolve_view(self, request, item, resolve=services.supply_break_resolve,
                             title=f"Resolve supply break {item.id}: {item.product.symbol} on {item.chain}")


@admin.register(Attestation)
class AttestationAdmin(ReadOnlyAdmin):
    """Signed reserve attestations (read-only: each is a ledger event). Operations may issue one now."""

    list_display = ("attestation_id", "issued_at", "head_position", "key_id", "minimum_coverage", "ledger_position")
    search_fields = ("attestation_id",)
    readonly_fields = ("attestation_id", "issued_at", "head_position", "key_id", "public_key", "ledger_position",
                       "pretty_document")
    exclude = ("document",)

    @admin.display(description="minimum coverage")
    def minimum_coverage(self, obj):
        return json.loads(obj.document)["payload"]["totals"]["minimum_coverage"]

    @admin.display(description="document")
    def pretty_document(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(json.loads(obj.document), indent=2))

    def _can_issue(self, request) -> bool:
        return request.user.has_perm("custody.add_attestation")

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "can_issue": self._can_issue(request)})

    def get_urls(self):
        return [path("issue/", self.admin_site.admin_view(self.issue_view), name="custody_attestation_issue"),
                *super().get_urls()]

    def issue_view(self, request):
        if request.method != "POST" or not self._can_issue(request):
            raise PermissionDenied
        try:
            row = attestation_issue(actor=_actor(request))
            self.message_user(request, f"attestation {row.attestation_id} issued at ledger position "
                                       f"{row.head_position}")
        except StreamVersionConflict:
            self.message_user(request, "another attestation was issued at the same moment; try again",
                              messages.WARNING)
        return redirect(reverse("admin:custody_attestation_changelist"))
