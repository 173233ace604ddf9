"""The admin side of reference changes: existing rows of reference data show read-only, and a
"Propose a change" page turns an edit into a proposal that another person applies
(compliance.reference_changes). Adding a new row stays a plain form, checked by the model's rules."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms import modelform_factory
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from compliance.reference_changes import changeable, reference_change_propose
from config.api import DomainError


class ProposedChangesAdmin(admin.ModelAdmin):
    def _changeable_fields(self) -> tuple[str, ...]:
        spec = changeable(self.model)
        return spec.fields if spec else ()

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            return readonly
        extra = tuple(f for f in self._changeable_fields() if f not in readonly)
        return (*readonly, *extra, "propose_change")

    @admin.display(description="change")
    def propose_change(self, obj):
        info = self.model._meta.app_label, self.model._meta.model_name
        url = reverse("admin:{}_{}_propose".format(*info), args=[obj.pk])
        return format_html('<a href="{}">Propose a change</a> (another person applies it)', url)

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [path("<int:pk>/propose/", self.admin_site.admin_view(self.propose_view),
                     name="{}_{}_propose".format(*info)), *super().get_urls()]

    def propose_view(self, request, pk: int):
        meta = self.model._meta
        if not request.user.has_perm(f"{meta.app_label}.change_{meta.model_name}"):
            raise PermissionDenied
        obj = get_object_or_404(self.model, pk=pk)
        form_class = modelform_factory(self.model, fields=self._changeable_fields(),
                                       form=type("ProposalForm", (forms.ModelForm,), {
                                           "reason": forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                                                                     help_text="why (recorded on the ledger)")}))
        form = form_class(request.POST or None, instance=self.model.objects.get(pk=pk))
        if request.method == "POST" and form.is_valid():
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name != "reason"}
            try:
                proposal = reference_change_propose(target=obj, changes=changes, reason=form.cleaned_data["reason"],
                                                    user=request.user)
            except DomainError as exc:
                form.add_error(None, f"{exc.code}: {exc.message}")
            else:
                self.message_user(request, f"change {proposal.pk} proposed: another person applies it under "
                                           "Reference changes", messages.SUCCESS)
                return redirect(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk]))
        context = {**self.admin_site.each_context(request), "title": f"Propose a change to {obj}", "form": form,
                   "obj": obj, "opts": meta}
        return TemplateResponse(request, "admin/compliance/propose_change.html", context)
