"""Logs with a correlation id per request and per Celery task: structured JSON (production, tests: what log
collectors parse), or one short human line per record on a developer's terminal (`make run`); LOG_FORMAT in
config.settings chooses."""

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


# What every LogRecord carries; anything else on a record came from `extra=` and is shown after the message.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                    "correlation_id"}


class ConsoleFormatter(logging.Formatter):
    """`12:04:05 INFO  chains.executor: broadcast chain=ethereum op=12 [3f2a9c1e]`: time, level, logger,
    message, then the `extra=` fields as key=value (secrets redacted as in the JSON), then the first 8
    characters of the correlation id. Tracebacks follow on their own lines, as Python prints them."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={'[redacted]' if _SECRET_KEYS.search(key) else value}"
            for key, value in vars(record).items() if key not in _RECORD_FIELDS and not key.startswith("_")
            and not (key == "data" and record.name.startswith("celery")))  # Celery's repeat of the message
        correlation_id = getattr(record, "correlation_id", None)
        line = " ".join(filter(None, [
            self.formatTime(record, self.datefmt), f"{record.levelname:<5}", f"{record.name}:",
            record.getMessage(), extras, f"[{correlation_id[:8]}]" if correlation_id else ""]))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


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
