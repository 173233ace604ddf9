"""Admin for compliance. Decisions are admin actions that ask for a reason and call services; records
of decisions are never edited or deleted here. Auditors see everything read-only (view permissions)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

from compliance import services
from compliance.models import (
    AmlRisk,
    ApiKey,
    CaseStatus,
    ComplianceAlert,
    ComplianceCase,
    MarketMakerUser,
    NotionalUsage,
    Participant,
    ReferenceChange,
    SanctionsEntry,
    SanctionsList,
    ScreeningResult,
    Wallet,
)
from compliance.reference_changes import reference_change_approve, reference_change_reject
from compliance.validation import validate_address, validate_jurisdiction, validate_lei
from config.api import DomainError
from ledger.admin import ReadOnlyAdmin
from ledger.selectors import read_stream


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=True)


class KycApproveForm(ReasonForm):
    expires_on = forms.DateField(help_text="YYYY-MM-DD")
    review_on = forms.DateField(required=False, help_text="next periodic review, YYYY-MM-DD")


class AmlRiskForm(ReasonForm):
    risk = forms.ChoiceField(choices=AmlRisk.choices)


class DetailsForm(ReasonForm):
    legal_name = forms.CharField(max_length=300, required=False, help_text="leave empty to keep")
    jurisdiction = forms.CharField(max_length=2, required=False)
    contact_name = forms.CharField(max_length=200, required=False)
    contact_email = forms.EmailField(required=False)
    contact_phone = forms.CharField(max_length=40, required=False)


class LimitsForm(ReasonForm):
    min_request_cents = forms.IntegerField(min_value=0)
    max_request_cents = forms.IntegerField(min_value=0)
    daily_limit_cents = forms.IntegerField(min_value=0)


def _reason_action(modeladmin, request, queryset, *, title: str, form_class, perform):
    """Show a form asking for the reason (and other inputs), then apply `perform` to each object."""
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            done = 0
            for obj in queryset:
                try:
                    perform(obj, request.user, form.cleaned_data)
                    done += 1
                except DomainError as exc:
                    modeladmin.message_user(request, f"{obj}: {exc.message} ({exc.code})", messages.ERROR)
            if done:
                modeladmin.message_user(request, f"{title}: {done} done", messages.SUCCESS)
            return None
    else:
        form = form_class()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title, "form": form, "queryset": queryset, "opts": modeladmin.model._meta,
        "action": request.POST.get("action"), "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/compliance/reason_form.html", context)


def _history(stream: str):
    events = read_stream(stream=stream)
    if not events:
        return "—"
    return format_html_join(
        "\n", "<div>#{} {} <b>{}</b> by {}: <code>{}</code></div>",
        ((e.position, e.recorded_at.strftime("%Y-%m-%d %H:%M:%S"), e.type, e.metadata.get("actor"), e.data)
         for e in events),
    )


class ScreeningInline(admin.TabularInline):
    model = ScreeningResult
    fk_name = "participant"
    fields = ["screened_at", "subject_type", "screened_value", "hit", "best_score", "threshold", "trigger"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class CaseInline(admin.TabularInline):
    model = ComplianceCase
    fields = ["status", "summary", "opened_at", "decided_by", "decided_at", "decision_reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ParticipantAddForm(forms.ModelForm):
    class Meta:
        model = Participant
        fields = ["legal_name", "lei", "jurisdiction", "contact_name", "contact_email", "contact_phone", "aml_risk"]

    def clean_lei(self):
        return _validated(validate_lei, self.cleaned_data["lei"])

    def clean_jurisdiction(self):
        return _validated(validate_jurisdiction, self.cleaned_data["jurisdiction"])


class WalletAddForm(forms.ModelForm):
    class Meta:
        model = Wallet
        fields = ["participant", "chain", "address", "label"]

    def clean(self):
        data = super().clean()
        if data.get("chain") and data.get("address"):
            data["address"] = _validated(lambda a: validate_address(chain=data["chain"], address=a), data["address"])
        return data


def _validated(fn, value):
    try:
        return fn(value)
    except DomainError as exc:
        raise forms.ValidationError(exc.message, code=exc.code) from None


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["id", "legal_name", "lei", "jurisdiction", "kyc_status", "kyc_expires_on", "aml_risk",
                    "sanctions_hold"]
    list_filter = ["kyc_status", "aml_risk", "sanctions_hold", "jurisdiction"]
    search_fields = ["legal_name", "lei"]
    inlines = [CaseInline, ScreeningInline]
    add_fields = ["legal_name", "lei", "jurisdiction", "contact_name", "contact_email", "contact_phone", "aml_risk"]
    actions = ["approve_kyc", "reject_kyc", "suspend_kyc", "resubmit_kyc", "set_aml_risk", "set_limits",
               "update_details", "screen_now"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ParticipantAddForm
        return super().get_form(request, obj, **kwargs)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        return [f.name for f in Participant._meta.fields if f.name != "id"] + ["history"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="History (ledger)")
    def history(self, obj):
        return _history(f"participant-{obj.id}")

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = services.participant_create(created_by=request.user, **{f: form.cleaned_data[f]
                                                                           for f in self.add_fields})
        obj.pk = created.pk

    def has_decide_kyc_permission(self, request) -> bool:
        return request.user.has_perm("compliance.decide_kyc")

    @admin.action(description="Approve / renew KYC", permissions=["decide_kyc"])
    def approve_kyc(self, request, queryset):
        return _reason_action(self, request, queryset, title="Approve KYC", form_class=KycApproveForm,
                              perform=lambda p, u, d: services.participant_kyc_approve(
                                  participant=p, approved_by=u, expires_on=d["expires_on"],
                                  review_on=d["review_on"], reason=d["reason"]))

    @admin.action(description="Reject KYC", permissions=["decide_kyc"])
    def reject_kyc(self, request, queryset):
        return _reason_action(self, request, queryset, title="Reject KYC", form_class=ReasonForm,
                              perform=lambda p, u, d: services.participant_kyc_reject(
                                  participant=p, decided_by=u, reason=d["reason"]))

    @admin.action(description="Suspend KYC", permissions=["decide_kyc"])
    def suspend_kyc(self, request, queryset):
        return _reason_action(self, request, queryset, title="Suspend KYC", form_class=ReasonForm,
                              perform=lambda p, u, d: services.participant_kyc_suspend(
                                  participant=p, decided_by=u, reason=d["reason"]))

    @admin.action(description="Resubmit for KYC review", permissions=["change"])
    def resubmit_kyc(self, request, queryset):
        return _reason_action(self, request, queryset, title="Resubmit for KYC review", form_class=ReasonForm,
                              perform=lambda p, u, d: services.participant_kyc_resubmit(
                                  participant=p, submitted_by=u, reason=d["reason"]))

    @admin.action(description="Set AML risk rating", permissions=["decide_kyc"])
    def set_aml_risk(self, request, queryset):
        return _reason_action(self, request, queryset, title="Set AML risk", form_class=AmlRiskForm,
                              perform=lambda p, u, d: services.participant_aml_risk_set(
                                  participant=p, risk=d["risk"], decided_by=u, reason=d["reason"]))

    @admin.action(description="Set limits", permissions=["decide_kyc"])
    def set_limits(self, request, queryset):
        return _reason_action(self, request, queryset, title="Set limits", form_class=LimitsForm,
                              perform=lambda p, u, d: services.participant_limits_set(
                                  participant=p, decided_by=u, reason=d["reason"],
                                  min_request_cents=d["min_request_cents"], max_request_cents=d["max_request_cents"],
                                  daily_limit_cents=d["daily_limit_cents"]))

    @admin.action(description="Correct name, jurisdiction or contacts", permissions=["change"])
    def update_details(self, request, queryset):
        return _reason_action(self, request, queryset, title="Correct details", form_class=DetailsForm,
                              perform=lambda p, u, d: services.participant_update(
                                  participant=p, changed_by=u, reason=d["reason"],
                                  **{k: v for k, v in d.items() if k != "reason" and v}))

    @admin.action(description="Screen against the current sanctions list now", permissions=["change"])
    def screen_now(self, request, queryset):
        for participant in queryset:
            services.participant_screen(participant=participant, trigger=f"manual:user:{request.user.id}")
        self.message_user(request, "screened", messages.SUCCESS)


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ["id", "participant", "chain", "address", "status", "frozen", "sanctions_hold"]
    list_filter = ["chain", "status", "frozen", "sanctions_hold"]
    search_fields = ["address", "participant__legal_name"]
    add_fields = ["participant", "chain", "address", "label"]
    actions = ["freeze", "unfreeze"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = WalletAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        return ["participant", "chain", "address", "label", "status", "verified_at", "frozen", "frozen_reason",
                "sanctions_hold", "created_at", "history"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="History (ledger)")
    def history(self, obj):
        return _history(f"wallet-{obj.id}")

    def save_model(self, request, obj, form, change):
        if change:
            return
        d = form.cleaned_data
        created = services.wallet_register(participant=d["participant"], chain=d["chain"], address=d["address"],
                                           label=d.get("label", ""), actor=f"user:{request.user.id}")
        obj.pk = created.pk

    def has_freeze_wallet_permission(self, request) -> bool:
        return request.user.has_perm("compliance.freeze_wallet")

    @admin.action(description="Freeze", permissions=["freeze_wallet"])
    def freeze(self, request, queryset):
        return _reason_action(self, request, queryset, title="Freeze wallets", form_class=ReasonForm,
                              perform=lambda w, u, d: services.wallet_freeze(wallet=w, decided_by=u,
                                                                             reason=d["reason"]))

    @admin.action(description="Unfreeze", permissions=["freeze_wallet"])
    def unfreeze(self, request, queryset):
        return _reason_action(self, request, queryset, title="Unfreeze wallets", form_class=ReasonForm,
                              perform=lambda w, u, d: services.wallet_unfreeze(wallet=w, decided_by=u,
                                                                               reason=d["reason"]))


@admin.register(ComplianceCase)
class ComplianceCaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "participant", "wallet", "status", "opened_at", "decided_by", "decided_at"]
    list_filter = ["status"]
    fields = ["participant", "wallet", "status", "summary", "screening", "matches", "opened_at", "decided_by",
              "decided_at", "decision_reason", "history"]
    readonly_fields = fields
    actions = ["clear", "confirm"]

    @admin.display(description="Screening matches")
    def matches(self, obj):
        return format_html_join("\n", "<div>SDN uid {}: {} (score {})</div>",
                                ((m["uid"], m["name"], m["score"]) for m in obj.screening.matches))

    @admin.display(description="History (ledger)")
    def history(self, obj):
        return _history(f"case-{obj.id}")

    def has_decide_case_permission(self, request) -> bool:
        return request.user.has_perm("compliance.decide_case")

    @admin.action(description="Clear (false positive; lift the hold)", permissions=["decide_case"])
    def clear(self, request, queryset):
        return _reason_action(self, request, queryset, title="Clear cases", form_class=ReasonForm,
                              perform=lambda c, u, d: services.case_decide(case=c, decided_by=u,
                                                                           decision=CaseStatus.CLEARED,
                                                                           reason=d["reason"]))

    @admin.action(description="Confirm (true match; keep blocked)", permissions=["decide_case"])
    def confirm(self, request, queryset):
        return _reason_action(self, request, queryset, title="Confirm cases", form_class=ReasonForm,
                              perform=lambda c, u, d: services.case_decide(case=c, decided_by=u,
                                                                           decision=CaseStatus.CONFIRMED,
                                                                           reason=d["reason"]))


@admin.register(ScreeningResult)
class ScreeningResultAdmin(ReadOnlyAdmin):
    list_display = ["id", "screened_at", "subject_type", "participant", "wallet", "screened_value", "hit",
                    "best_score", "trigger"]
    list_filter = ["hit", "subject_type"]
    search_fields = ["screened_value", "participant__legal_name"]


class SanctionsUploadForm(forms.Form):
    file = forms.FileField(help_text="sdn.xml")


@admin.register(SanctionsList)
class SanctionsListAdmin(ReadOnlyAdmin):
    list_display = ["id", "publish_date", "entry_count", "record_count", "is_current", "held", "imported_by",
                    "imported_at", "shrink_approved_by", "source"]
    list_filter = ["is_current", "held"]
    actions = ["approve_shrink"]

    def has_import_sanctions_permission(self, request) -> bool:
        return request.user.has_perm("compliance.import_sanctions")

    @admin.action(description="Approve a held (much smaller) list: make it current (a second compliance officer)",
                  permissions=["import_sanctions"])
    def approve_shrink(self, request, queryset):
        return _reason_action(self, request, queryset, title="Approve held sanctions lists", form_class=ReasonForm,
                              perform=lambda lst, u, d: services.sanctions_list_approve_shrink(
                                  sanctions_list=lst, approved_by=u, reason=d["reason"]))

    def get_urls(self):
        from django.urls import path

        return [path("import/", self.admin_site.admin_view(self.import_view), name="compliance_sanctions_import"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": request.user.has_perm("compliance.import_sanctions")}
        return super().changelist_view(request, extra_context=extra_context)

    def import_view(self, request):
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import redirect

        if not request.user.has_perm("compliance.import_sanctions"):
            raise PermissionDenied
        form = SanctionsUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                imported = services.sanctions_list_import(source=f"upload:{upload.name}", content=upload.read(),
                                                          imported_by=request.user)
            except services.SanctionsListHeldForApproval as exc:
                self.message_user(request, f"{exc.message} ({exc.code}); in the admin: select it and "
                                           "\"Approve a held list\".", messages.WARNING)
                return redirect("admin:compliance_sanctionslist_changelist")
            except DomainError as exc:
                form.add_error("file", f"{exc.message} ({exc.code})")
            else:
                hits = imported.screenings.filter(hit=True).count()
                self.message_user(request, f"Imported {imported.entry_count} entries; everyone re-screened, "
                                           f"{hits} hit(s).", messages.SUCCESS)
                return redirect("admin:compliance_sanctionslist_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "title": "Import SDN list",
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/compliance/sanctions_import.html", context)


@admin.register(SanctionsEntry)
class SanctionsEntryAdmin(ReadOnlyAdmin):
    list_display = ["uid", "name", "sdn_type", "sanctions_list"]
    search_fields = ["name", "names__name", "addresses__address"]
    list_filter = ["sdn_type"]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["key_id", "user", "participant", "scope", "signature_alg", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["scope", "signature_alg"]
    exclude = ["secret_hash", "hmac_key_encrypted", "ed25519_public_key"]
    actions = ["revoke"]

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("compliance.change_apikey")

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request, queryset):
        return _reason_action(self, request, queryset, title="Revoke API keys", form_class=ReasonForm,
                              perform=lambda k, u, d: services.api_key_revoke(api_key=k, revoked_by=u,
                                                                              reason=d["reason"]))


@admin.register(ComplianceAlert)
class ComplianceAlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "kind", "participant", "message", "acknowledged_by", "acknowledged_at"]
    list_filter = ["kind"]
    actions = ["acknowledge"]

    def has_acknowledge_permission(self, request) -> bool:
        return request.user.has_perm("compliance.change_compliancealert")

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        for alert in queryset:
            services.alert_acknowledge(alert=alert, user=request.user)


@admin.register(MarketMakerUser)
class MarketMakerUserAdmin(ReadOnlyAdmin):
    list_display = ["user", "participant"]


@admin.register(NotionalUsage)
class NotionalUsageAdmin(ReadOnlyAdmin):
    list_display = ["reference", "participant", "usage_date", "notional_cents", "released_at"]
    list_filter = ["usage_date"]


@admin.register(ReferenceChange)
class ReferenceChangeAdmin(ReadOnlyAdmin):
    """Proposed changes to reference data; a person other than the proposer applies or rejects them."""

    list_display = ("id", "object_repr", "changes", "status", "proposed_by", "decided_by", "created_at")
    list_filter = ("status", "content_type")
    actions = ["apply_changes", "reject_changes"]

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("compliance.approve_referencechange")

    @admin.action(description="Apply (four eyes: not your own proposals)", permissions=["approve"])
    def apply_changes(self, request, queryset):
        for change in queryset:
            try:
                applied = reference_change_approve(change=change, user=request.user)
                level = messages.SUCCESS if applied.status == ReferenceChange.Status.APPLIED else messages.WARNING
                self.message_user(request, f"change {change.pk}: {applied.status}", level)
            except DomainError as exc:
                self.message_user(request, f"change {change.pk}: {exc.code}: {exc.message}", messages.ERROR)

    @admin.action(description="Reject", permissions=["approve"])
    def reject_changes(self, request, queryset):
        for change in queryset:
            try:
                reference_change_reject(change=change, user=request.user, reason=f"rejected by user {request.user.pk}")
                self.message_user(request, f"change {change.pk}: rejected")
            except DomainError as exc:
                self.message_user(request, f"change {change.pk}: {exc.code}: {exc.message}", messages.ERROR)
