"""API-wide conventions: every error is JSON with a stable machine-readable `code`."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """An expected refusal from a service; views turn it into a 4xx with this code."""

    code = "domain_error"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None, details=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details = details


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"error": {"code": exc.code, "message": exc.message}}
        if exc.details is not None:
            body["error"]["details"] = exc.details
        return Response(body, status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if hasattr(exc, "get_codes") and isinstance(exc.get_codes(), str):
        code = exc.get_codes()
    detail = response.data
    message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else "invalid request"
    body = {"error": {"code": code, "message": str(message)}}
    if not (isinstance(detail, dict) and set(detail) == {"detail"}):
        body["error"]["details"] = detail
    response.data = body
    return response


def validated(serializer_class, data) -> dict:
    """`serializer_class(data=data)` validated, as `validated_data`; refusals raise its ValidationError.

    DRF builds and deep-copies a serializer's fields for every instance, which on the mint path cost
    more than the database work. A body that plainly satisfies the declared fields (strings already
    trimmed and within their lengths, plain integers, one of the choices) is taken as it is, which is
    exactly what DRF would return for it; anything else, including every body DRF would refuse, goes
    through DRF, so refusals read the same as ever."""
    fast = _plainly_valid(serializer_class, data)
    if fast is not None:
        return fast
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _plainly_valid(serializer_class, data) -> dict | None:
    from rest_framework import fields, serializers

    if not isinstance(data, dict) or serializer_class.validate is not serializers.Serializer.validate:
        return None
    out = {}
    for name, field in serializer_class._declared_fields.items():
        if getattr(serializer_class, f"validate_{name}", None) is not None or field.read_only:
            return None
        value = data.get(field.source if field.source not in (None, "*") else name, fields.empty)
        if value is fields.empty:
            return None  # defaults and required-field errors are DRF's to apply
        kind = type(field)
        if kind is fields.CharField:
            if (not isinstance(value, str) or not value.isascii() or "\x00" in value
                    or (field.trim_whitespace and value != value.strip())
                    or (not value and not field.allow_blank)
                    or (field.max_length is not None and len(value) > field.max_length)
                    or (field.min_length is not None and len(value) < field.min_length)):
                return None
        elif kind is fields.IntegerField:
            if (type(value) is not int or (field.max_value is not None and value > field.max_value)
                    or (field.min_value is not None and value < field.min_value)):
                return None
        elif kind is fields.ChoiceField:
            if not isinstance(value, str) or value not in field.choice_strings_to_values:
                return None
            value = field.choice_strings_to_values[value]
        else:
            return None
        out[name] = value
    return out
