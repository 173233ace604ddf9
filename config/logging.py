"""Structured JSON logs with a correlation id per request and per Celery task."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
CORRELATION_HEADER = "X-Correlation-ID"
# A caller-supplied id is echoed into logs, so accept only a short, harmless token.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Keys whose values never reach a log line, wherever they appear in `extra`.
_SECRET_KEYS = re.compile(r"(secret|password|api[_-]?key|token|signature|authorization|private)", re.I)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    return correlation_id_var.get()


class CorrelationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id_var.get()
        return True


class JsonFormatter(_BaseJsonFormatter):
    def process_log_record(self, log_data: dict) -> dict:
        for key in list(log_data):
            if _SECRET_KEYS.search(key):
                log_data[key] = "[redacted]"
        return log_data


class CorrelationIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get(CORRELATION_HEADER, "")
        correlation_id = supplied if _VALID_ID.match(supplied) else new_correlation_id()
        token = correlation_id_var.set(correlation_id)
        request.correlation_id = correlation_id
        try:
            response = self.get_response(request)
        finally:
            correlation_id_var.reset(token)
        response[CORRELATION_HEADER] = correlation_id
        return response
