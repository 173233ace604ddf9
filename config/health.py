"""/healthz: database, broker and worker liveness, for load balancers and `make run`."""

from __future__ import annotations

import logging
import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def _check_database() -> dict:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_broker() -> dict:
    from config.celery import app

    started = time.perf_counter()
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_workers() -> dict:
    from config.celery import app

    replies = app.control.ping(timeout=1.0) or []
    return {"ok": bool(replies), "count": len(replies)}


@require_GET
def healthz(request):
    checks = {}
    for name, check in (("database", _check_database), ("broker", _check_broker), ("workers", _check_workers)):
        try:
            checks[name] = check()
        except Exception as exc:  # a health probe reports every failure, it never raises
            checks[name] = {"ok": False, "error": type(exc).__name__}
    healthy = all(item["ok"] for item in checks.values())
    response = JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks},
                            status=200 if healthy else 503)
    if not healthy:
        # A degraded answer is the probe doing its job (a worker still booting, a broker restarting), not a
        # server error: one WARNING naming what failed, instead of django.request's ERROR for every 5xx.
        logger.warning("health degraded: %s", ", ".join(name for name, item in checks.items() if not item["ok"]))
        response._has_been_logged = True  # what django.utils.log.log_response checks before logging
    return response
