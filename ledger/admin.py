"""Read-only admin for the log and its projections: nobody edits them here, not even a superuser.
The only way to change the ledger is a service that appends an event."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from ledger.models import Account, Balance, Event, PendingTransfer, Posting, Stream


class ReadOnlyAdmin(admin.ModelAdmin):
    """The one read-only admin every app uses for its records: the log, fills, cases, statements..."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # which also withholds the bulk "delete selected" action


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("line_no", "account", "asset", "posted_delta", "pending_in_delta", "pending_out_delta", "pending_id",
              "posted_after")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("position", "event_type", "stream_id", "stream_version", "recorded_at", "actor", "short_hash")
    list_filter = ("event_type",)
    search_fields = ("stream_id", "event_type", "=event_id")
    date_hierarchy = "recorded_at"
    readonly_fields = ("position", "event_id", "stream_id", "stream_version", "event_type", "schema_version",
                       "pretty_data", "pretty_metadata", "recorded_at", "hash_hex")
    exclude = ("data", "metadata", "hash")
    inlines = [PostingInline]
    show_full_result_count = False  # count(*) over millions of events is slow and nobody needs it

    @admin.display(description="actor")
    def actor(self, obj):
        return (obj.metadata or {}).get("actor")

    @admin.display(description="hash")
    def short_hash(self, obj):
        return bytes(obj.hash).hex()[:16]

    @admin.display(description="hash")
    def hash_hex(self, obj):
        return bytes(obj.hash).hex()

    @admin.display(description="data")
    def pretty_data(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False))

    @admin.display(description="metadata")
    def pretty_metadata(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata, indent=2, ensure_ascii=False))


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = ("event", "line_no", "account", "asset", "posted_delta", "pending_in_delta", "pending_out_delta",
                    "pending_id", "posted_after")
    list_select_related = ("account",)
    search_fields = ("account__path", "asset", "pending_id")
    list_filter = ("asset",)
    show_full_result_count = False


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("account", "asset", "posted", "pending_in", "pending_out", "available")
    list_select_related = ("account",)
    search_fields = ("account__path", "asset")
    list_filter = ("asset",)

    @admin.display(description="available")
    def available(self, obj):
        return obj.posted - obj.pending_out


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("path", "non_negative")
    search_fields = ("path",)


@admin.register(PendingTransfer)
class PendingTransferAdmin(ReadOnlyAdmin):
    list_display = ("pending_id", "asset", "amount", "state", "posted_amount", "debit_account", "credit_account")
    list_filter = ("state", "asset")
    search_fields = ("pending_id",)


@admin.register(Stream)
class StreamAdmin(ReadOnlyAdmin):
    list_display = ("stream_id", "version")
    search_fields = ("stream_id",)
