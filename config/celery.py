"""The Celery app. Tasks carry the correlation id of whatever enqueued them."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("issuer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Tasks routed by name to a queue of their own (see CELERY_WEBHOOK_QUEUE). Read when each task is sent,
# so the test harness can point a session's webhooks at its own queue.
_OWN_QUEUE = {"mint_redeem.deliver_webhook": "webhook_queue"}


def route_task(name, args, kwargs, options, task=None, **_kwargs):
    setting = _OWN_QUEUE.get(name)
    return {"queue": app.conf[setting]} if setting else None


@signals.before_task_publish.connect
def _attach_correlation_id(headers=None, **_kwargs):
    from config.logging import current_correlation_id

    # Not "correlation_id": Celery already uses that message property for the task id.
    if headers is not None and "issuer_correlation_id" not in headers:
        headers["issuer_correlation_id"] = current_correlation_id()


@signals.task_prerun.connect
def _bind_correlation_id(task=None, task_id=None, **_kwargs):
    from config.logging import correlation_id_var

    correlation_id = getattr(task.request, "issuer_correlation_id", None) if task is not None else None
    correlation_id_var.set(correlation_id or task_id)


@signals.task_postrun.connect
def _unbind_correlation_id(**_kwargs):
    from config.logging import correlation_id_var

    correlation_id_var.set(None)


@app.task(name="config.ping")
def ping() -> str:
    """A no-op used by health checks and tests to prove a worker is consuming."""
    return "pong"
