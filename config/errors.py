"""Django's own error answers (no URL matched, a bug, a request Django refused before any view ran) in the
API's JSON envelope for every path under /api/, as a client generated from the schema expects; everything
else (the admin) keeps Django's HTML pages.

DRF views already answer their refusals through config.api.exception_handler; these handlers cover what
happens outside them: a path no URL pattern matches (`/api/v1/wallets/null`, `/api/v1/nothing`), an
exception DRF does not handle (a bug: 500), and the 400/403 Django itself answers (a bad Host header, a
body over DATA_UPLOAD_MAX_MEMORY_SIZE). A 500 is retryable for the same reason every 5xx is: the request's
transaction rolled back whole, so sending it again (with the same Idempotency-Key) is safe.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

API_PREFIX = "/api/"


def is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def envelope(status: int, code: str, message: str, *, retryable: bool) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "retryable": retryable}}, status=status)


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    if is_api(request):
        return envelope(400, "bad_request", "the request could not be read", retryable=False)
    return defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name=defaults.ERROR_403_TEMPLATE_NAME):
    if is_api(request):
        return envelope(403, "permission_denied", "You do not have permission to perform this action.",
                        retryable=False)
    return defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    if is_api(request):
        return envelope(404, "not_found", f"nothing at {request.path[:200]} (see /api/schema/ for every path)",
                        retryable=False)
    return defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if is_api(request):
        return envelope(500, "internal_error", "the server failed to answer this request; send it again (with the "
                        "same Idempotency-Key)", retryable=True)
    return defaults.server_error(request, template_name)


class JsonErrorsMixin:
    """For the views that serve the schema (YAML or JSON) and Swagger UI (HTML): a refusal of theirs (a 405,
    a 406) is the API's JSON envelope all the same, as everywhere under /api/."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and isinstance(response, Response) and isinstance(response.data, dict) \
                and "error" in response.data:
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response

