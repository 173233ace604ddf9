"""The API's contract is its OpenAPI schema (/api/schema/): market makers generate their clients from it,
so it declares every answer each operation can give, and a test sends generated requests to a live
server and fails on any answer the schema does not declare (tests/mint_redeem/test_api_contract.py).

Every refusal is the envelope of config.api, one component (`Error`):

    {"error": {"code": "...", "message": "...", "retryable": true|false, "details": {...}?}}

Most refusals follow from how an operation is built, not from what it does, so `AutoSchema` adds them to
every operation from the view itself:

- every operation: 400 `bad_request` (a request Django itself refuses: config.errors) and 406
  `not_acceptable` (content negotiation runs before anything else);
- authentication and permissions: `not_authenticated`, and `permission_denied` when a permission can
  refuse a caller who did authenticate. DRF answers 401 when the view's first authentication class names a
  WWW-Authenticate challenge, 403 otherwise (a session, whose challenge is a sign-in page);
- a request body: 400 `parse_error` and `invalid` (field errors in `details`), 415 `unsupported_media_type`;
- an id in the path: 404 `not_found` (also another participant's object, which reads as missing);
- a paginated list: 404 `not_found` for a cursor it did not give, 400 `invalid` for a malformed filter;
- state-changing methods: 409 `concurrent_update` (another request won a race for the same rows);
- every operation: 503 `database_unavailable`, with Retry-After.

What depends on a particular authentication class or decorator is added by the app that owns it, in a
subclass (compliance.schema.AutoSchema, the one in use: API keys, signatures, rate limits,
Idempotency-Key). What a view's own services refuse (a compliance gate, an unknown product, a paused
product) the view declares with `@refuses(...)`. Answers of one status are one response whose examples
are keyed by code and whose description lists every code with when it is given.

A 500 is never declared: it is a bug (still answered in the envelope under /api/, config.errors).
"""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular import openapi
from rest_framework import permissions, serializers

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable, machine-readable: e.g. kyc_expired, insufficient_funding")
    message = serializers.CharField(help_text="for humans; may change")
    retryable = serializers.BooleanField(
        help_text="true: the refusal depends on the moment (a pause, a limit, a concurrent change, the database "
                  "restarting); nothing was stored under the Idempotency-Key and the same request may succeed "
                  "later. false: the final answer to this request, stored and replayed for its key")
    details = serializers.JSONField(required=False, help_text="e.g. each field's problems, for `invalid`")


class ErrorSerializer(serializers.Serializer):
    """Every refusal the API gives, whatever its status."""

    error = ErrorDetailSerializer()


@dataclass(frozen=True)
class Refusal:
    """One answer in the error envelope: its status, its code, whether it is retryable, an example
    message, and when it is given (for the response's description)."""

    status: int
    code: str
    retryable: bool
    message: str
    when: str
    headers: tuple[str, ...] = ()
    example: str = ""  # the example's name, when one status and code have two examples

    @property
    def example_name(self) -> str:
        return "".join(part.capitalize() for part in (self.example or self.code).split("_"))

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "retryable": self.retryable}}


# Response headers a refusal may name.
HEADERS = {
    "Retry-After": {"schema": {"type": "integer", "minimum": 0}, "required": True,
                    "description": "seconds to wait before sending the same request again"},
    "WWW-Authenticate": {"schema": {"type": "string"}, "required": True,
                         "description": "the authentication scheme the API expects"},
}

BAD_REQUEST = Refusal(400, "bad_request", False, "the request could not be read",
                      "Django refused the request before the API saw it: a Host header the server does not "
                      "serve, or a body larger than it reads (2.5 MB)")
NOT_ACCEPTABLE = Refusal(406, "not_acceptable", False, "Could not satisfy the request Accept header.",
                         "the Accept header admits no JSON")
PARSE_ERROR = Refusal(400, "parse_error", False, "JSON parse error - Expecting value: line 1 column 1 (char 0)",
                      "the body is not well-formed for its Content-Type")
INVALID = Refusal(400, "invalid", False, "invalid request",
                  "the request does not have the declared shape; `details` names each field's problems")
UNSUPPORTED_MEDIA_TYPE = Refusal(415, "unsupported_media_type", False,
                                 'Unsupported media type "text/plain" in request.',
                                 "the body's Content-Type is not one of those declared")
NOT_FOUND = Refusal(404, "not_found", False, "No such object.",
                    "no such object, or not one of yours (the two read the same)")
INVALID_CURSOR = Refusal(404, "not_found", False, "Invalid cursor", "the cursor is not one this list gave",
                         example="invalid_cursor")
CONCURRENT_UPDATE = Refusal(409, "concurrent_update", True, "another request changed the same data; send it again",
                            "another request changed the same data first; nothing was done")
PERMISSION_DENIED = Refusal(403, "permission_denied", False, "You do not have permission to perform this action.",
                            "these credentials may not do this")
DATABASE_UNAVAILABLE = Refusal(503, "database_unavailable", True,
                               "the database is unavailable for a moment; send the request again",
                               "the database is restarting or unreachable; nothing was done",
                               headers=("Retry-After",))


def not_authenticated(status: int) -> Refusal:
    return Refusal(status, "not_authenticated", False, "Authentication credentials were not provided.",
                   "no credentials", headers=("WWW-Authenticate",) if status == 401 else ())




def refuses(*refusals: Refusal):
    """Declare what a view method's own services refuse (what every operation of its kind can meet is
    added by AutoSchema). Above or below @idempotent alike: functools.wraps carries the attribute."""

    def decorate(handler):
        handler.refusals = (*getattr(handler, "refusals", ()), *refusals)
        return handler

    return decorate


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus every refusal an operation can give (see the module docstring)."""

    @property
    def handler(self):
        return getattr(self.view, self.method.lower(), None)

    @property
    def authentication_failure_status(self) -> int:
        """What DRF answers a request whose authentication failed or was missing: 401 when the first
        authentication class names a challenge for WWW-Authenticate, else 403."""
        authenticators = self.view.get_authenticators()
        if authenticators and authenticators[0].authenticate_header(self.view.request):
            return 401
        return 403

    def has_path_parameters(self) -> bool:
        return "{" in self.path

    def changes_state(self) -> bool:
        """Whether the operation writes (and so can lose a race for the rows it writes)."""
        return self.method not in SAFE_METHODS

    def is_paginated(self) -> bool:
        return self.method == "GET" and getattr(self.view, "pagination_class", None) is not None

    def refusals(self) -> list[Refusal]:
        found = [BAD_REQUEST, NOT_ACCEPTABLE]
        permission_classes = [type(p) for p in self.view.get_permissions()]
        if any(cls is not permissions.AllowAny for cls in permission_classes) and self.view.get_authenticators():
            found.append(not_authenticated(self.authentication_failure_status))
            if any(cls not in (permissions.AllowAny, permissions.IsAuthenticated) for cls in permission_classes):
                found.append(PERMISSION_DENIED)
        if self.method not in SAFE_METHODS and self.get_request_serializer() is not None:
            found += [PARSE_ERROR, INVALID, UNSUPPORTED_MEDIA_TYPE]
        if self.has_path_parameters():
            found.append(NOT_FOUND)
        if self.is_paginated():
            found += [INVALID_CURSOR, INVALID]
        if self.changes_state():
            found.append(CONCURRENT_UPDATE)
        found.append(DATABASE_UNAVAILABLE)
        found += getattr(self.handler, "refusals", ())
        return found

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        by_status: dict[int, list[Refusal]] = {}
        for refusal in self.refusals():
            group = by_status.setdefault(refusal.status, [])
            if all(r.example_name != refusal.example_name for r in group):
                group.append(refusal)
        for status, group in by_status.items():
            self._declare(responses, str(status), group)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _declare(self, responses: dict, status: str, group: list[Refusal]) -> None:
        error_ref = self.resolve_serializer(ErrorSerializer, "response").ref
        response = responses.setdefault(status, {"description": ""})
        lines = [line for line in response.get("description", "").splitlines() if line]
        for refusal in group:
            line = f"- `{refusal.code}`{' (retryable)' if refusal.retryable else ''}: {refusal.when}"
            if line not in lines:
                lines.append(line)
        response["description"] = "\n".join(lines)
        for media_type in self.map_renderers("media_type"):
            content = response.setdefault("content", {}).setdefault(media_type, {"schema": error_ref})
            examples = content.setdefault("examples", {})
            for refusal in group:
                examples.setdefault(refusal.example_name, {"value": refusal.body(), "summary": refusal.code})
        headers = response.setdefault("headers", {})
        for name in sorted({name for refusal in group for name in refusal.headers}):
            headers.setdefault(name, HEADERS[name])
        if not headers:
            del response["headers"]

