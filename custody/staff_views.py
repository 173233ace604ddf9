"""The read-only staff API for auditors (and other staff): the event log, page by page, with the
browser's filters. Writes nothing; an auditor's read-only API key or verified staff session."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from compliance.views import StaffView
from config.api import DomainError
from config.openapi import Refusal, refuses
from ledger import canonical
from ledger.selectors import read_log_filtered

MAX_PAGE = 1000
INVALID_FILTER = Refusal(400, "invalid_filter", False, "after_position must be a log position",
                         "a filter is malformed: positions and limit are integers, instants ISO 8601 with an offset")


class FilterRefusal(DomainError):
    code = "invalid_filter"
    http_status = 400
    retryable = False


def _position(params, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise FilterRefusal(f"{name} must be a log position")
    return int(raw)


def _instant(params, name: str):
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        instant = parse_datetime(raw)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise FilterRefusal(f"{name} must be an ISO 8601 instant with a UTC offset")
    return instant


class StaffEventLogView(StaffView):
    @extend_schema(
        parameters=[OpenApiParameter(name, str, required=False, description=text) for name, text in (
            ("stream", "only this stream"), ("type", "only this event type"), ("actor", "only this actor"),
            ("after_position", "events after this log position (the page cursor)"),
            ("up_to_position", "events up to this position"), ("since", "recorded at or after (ISO 8601)"),
            ("until", "recorded before (ISO 8601)"), ("limit", f"page size, 1..{MAX_PAGE} (100)"))],
        responses=OpenApiResponse(response=OpenApiTypes.OBJECT, description=(
            "{events: [{position, recorded_at, stream, version, type, schema_version, event_id, data, metadata, "
            "hash}], next_after_position}: pass next_after_position as after_position for the next page "
            "(null at the end).")),
        summary="The event log, filtered and paged by position (issuer staff, auditors)")
    @refuses(INVALID_FILTER)
    def get(self, request):
        params = request.query_params
        limit = _position(params, "limit") or 100
        if not 1 <= limit <= MAX_PAGE:
            raise FilterRefusal(f"limit must be 1..{MAX_PAGE}")
        events = read_log_filtered(
            after_position=_position(params, "after_position") or 0, limit=limit, stream=params.get("stream") or None,
            event_type=params.get("type") or None, actor=params.get("actor") or None,
            up_to_position=_position(params, "up_to_position"), since=_instant(params, "since"),
            until=_instant(params, "until"))
        return Response({
            "events": [{"position": e.position, "recorded_at": canonical.format_recorded_at(e.recorded_at),
                        "stream": e.stream, "version": e.version, "type": e.type,
                        "schema_version": e.schema_version, "event_id": e.event_id, "data": e.data,
                        "metadata": e.metadata, "hash": e.hash.hex()} for e in events],
            "next_after_position": events[-1].position if len(events) == limit else None})
