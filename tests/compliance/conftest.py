"""Overrides the shared `celery_worker_process` for this directory only: the shared fixture builds the
worker's DATABASE_URL from HOST/PORT, but the embedded PostgreSQL's socket directory lives in
OPTIONS["host"], so its worker connected to the default socket. Same fixture, complete URL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest

from tests.conftest import ROOT


def _database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    options = s.get("OPTIONS") or {}
    host = s.get("HOST") or options.get("host") or ""
    port = s.get("PORT") or options.get("port") or ""
    user, password = s.get("USER") or "", s.get("PASSWORD") or ""
    auth = f"{quote(user)}:{quote(password)}@" if password else (f"{quote(user)}@" if user else "")
    if str(host).startswith("/"):
        return f"postgresql://{auth}/{s['NAME']}?host={host}" + (f"&port={port}" if port else "")
    return f"postgresql://{auth}{host}{':' + str(port) if port else ''}/{s['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    from django.conf import settings

    from config.celery import app

    queue = f"test-compliance-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    with django_db_blocker.unblock():
        db_url = _database_url()
    env = {**os.environ, "ISSUER_ENV": "test", "DATABASE_URL": db_url, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CELERY_DEFAULT_QUEUE": queue, "DB_CONN_MAX_AGE": "0"}
    log_path = ROOT / ".data" / f"celery-{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed in teardown
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=1",
         "--pool=prefork", f"--queues={queue}", f"--hostname={queue}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not come up; see {log_path}")
        worker.log_path = log_path
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
