"""Read-only admin for the log and its projections: nobody edits them here, not even a superuser.
The only way to change the ledger is a service that appends an event."""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from ledger import integrity
from ledger.models import Account, Balance, Event, PendingTransfer, Posting, Stream

# The event-log browser's filters, as query parameters: the list and both exports read the same ones.
LOG_FILTERS = {"stream_id": "stream", "event_type": "event_type", "metadata__actor": "actor",
               "position__gt": "after_position", "position__lte": "up_to_position",
               "recorded_at__gte": "since", "recorded_at__lt": "until"}


def log_filter(params) -> integrity.ExportFilter:
    """The ExportFilter named by the browser's query parameters (bad values are a 400 in the caller)."""
    values = {}
    for param, field in LOG_FILTERS.items():
        raw = params.get(param)
        if raw in (None, ""):
            continue
        if field.endswith("position"):
            if not raw.isdigit():
                raise ValueError(f"{param} must be a log position")
            values[field] = int(raw)
        elif field in ("since", "until"):
            instant = parse_datetime(raw)
            if instant is None or instant.tzinfo is None:
                raise ValueError(f"{param} must be an ISO 8601 instant with a UTC offset")
            values[field] = instant
        else:
            values[field] = raw
    return integrity.ExportFilter(**values)


class _Echo:
    def write(self, value):
        return value


def _csv_rows(documents):
    writer = csv.writer(_Echo())
    yield writer.writerow(["position", "recorded_at", "stream", "version", "type", "actor", "event_id", "hash",
                           "data", "postings"])
    for d in documents:
        event = d["event"]
        yield writer.writerow([d["position"], d["recorded_at"], event["stream"], d["version"], event["type"],
                               (event["metadata"] or {}).get("actor"), event["event_id"], d["hash"],
                               json.dumps(event["data"], ensure_ascii=False, separators=(",", ":")),
                               json.dumps(event["postings"], ensure_ascii=False, separators=(",", ":"))])


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

    change_list_template = "admin/ledger/event/change_list.html"

    @admin.display(description="actor")
    def actor(self, obj):
        return (obj.metadata or {}).get("actor")

    def lookup_allowed(self, lookup, value, request=None):
        # The browser's filters (stream, actor, position range, time range) arrive as query parameters.
        return lookup in LOG_FILTERS or super().lookup_allowed(lookup, value, request)

    def changelist_view(self, request, extra_context=None):
        query = request.GET.urlencode()
        return super().changelist_view(request, {**(extra_context or {}), "export_query": query})

    def get_urls(self):
        return [path("export.csv", self.admin_site.admin_view(self.export_view), {"as_csv": True},
                     name="ledger_event_export_csv"),
                path("export.jsonl", self.admin_site.admin_view(self.export_view), {"as_csv": False},
                     name="ledger_event_export_jsonl"),
                *super().get_urls()]

    def export_view(self, request, as_csv: bool):
        """The filtered log, streamed: CSV for spreadsheets, JSON Lines (the unfiltered one is what
        `python -m ledger.verify_attestation --log` reads)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            keep = log_filter(request.GET)
        except ValueError as exc:
            return HttpResponseBadRequest(str(exc))
        documents = integrity.export_documents(keep=keep)
        if as_csv:
            response = StreamingHttpResponse(_csv_rows(documents), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="ledger-events.csv"'
        else:
            lines = (json.dumps(d, separators=(",", ":"), ensure_ascii=False) + "\n" for d in documents)
            response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="ledger-events.jsonl"'
        return response

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
