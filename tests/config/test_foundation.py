import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

from tests.subprocesses import command_env, describe, run

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_reports_database_broker_and_workers(db, client):
    response = client.get("/healthz")
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert "workers" in body["checks"]
    assert response.status_code == (200 if body["checks"]["workers"]["ok"] else 503)


@pytest.mark.celery
def test_healthz_is_green_with_a_real_worker(committed, celery_worker_process):
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["workers"]["count"] >= 1


def test_every_response_carries_a_correlation_id(db, client):
    generated = client.get("/healthz")["X-Correlation-ID"]
    assert len(generated) == 32
    echoed = client.get("/healthz", HTTP_X_CORRELATION_ID="abc-123")["X-Correlation-ID"]
    assert echoed == "abc-123"
    # Anything that could inject into logs is replaced, not echoed.
    assert client.get("/healthz", HTTP_X_CORRELATION_ID="bad\nvalue")["X-Correlation-ID"] != "bad\nvalue"


def test_logs_are_json_with_correlation_id_and_no_secrets(db):
    from config.logging import CorrelationIdFilter, JsonFormatter, correlation_id_var

    formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    record = logging.LogRecord("issuer", logging.INFO, __file__, 1, "minted %s", ("x",), None)
    record.api_secret = "s3cr3t"
    record.quantity = 5
    token = correlation_id_var.set("corr-1")
    try:
        CorrelationIdFilter().filter(record)
    finally:
        correlation_id_var.reset(token)
    line = json.loads(formatter.format(record))
    assert line["message"] == "minted x"
    assert line["correlation_id"] == "corr-1"
    assert line["api_secret"] == "[redacted]" and line["quantity"] == 5


@pytest.mark.celery
def test_a_task_logs_with_the_correlation_id_of_whoever_enqueued_it(committed, celery_worker_process):
    from config.celery import ping
    from config.logging import correlation_id_var

    token = correlation_id_var.set("trace-me-42")
    try:
        task_id = ping.delay().id
    finally:
        correlation_id_var.reset(token)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        matching = [json.loads(line) for line in celery_worker_process.log_path.read_text().splitlines()
                    if line.startswith("{") and task_id in line and "succeeded" in line]
        if matching:
            assert all(entry.get("correlation_id") == "trace-me-42" for entry in matching)
            return
        time.sleep(0.2)
    pytest.fail("the worker never logged the task")


def test_openapi_schema_and_docs_are_served(db, admin_client):
    schema = admin_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"openapi" in schema.content
    assert admin_client.get("/api/docs/").status_code == 200


def _run_manage(args, env):
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "ISSUER_ENV"}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_production_profile_requires_its_secrets():
    result = _run_manage(["check"], {"ISSUER_ENV": "production"})
    assert result.returncode != 0
    assert "must be set in the production profile" in result.stderr


PRODUCTION_ENV = {
    "ISSUER_ENV": "production",
    "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "FIELD_ENCRYPTION_KEYS": "field-encryption-key-newest-0123456789abcdef",
    "DATABASE_URL": "postgresql://issuer@db.invalid:5432/issuer",
    "CELERY_BROKER_URL": "redis://broker.invalid:6379/0",
    "ALLOWED_HOSTS": "issuer.example.com",
    # Each EVM chain names its node and how deep a block must be before it is acted on.
    **{f"EVM_{chain}_{name}": value for chain in ("ETHEREUM", "ARBITRUM", "BASE")
       for name, value in (("RPC_URL", f"https://{chain.lower()}-rpc.invalid"), ("CONFIRMATIONS", "12"))},
}


def test_production_profile_passes_check_deploy():
    result = _run_manage(["check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("change,refusal", [
    ({"FIELD_ENCRYPTION_KEYS": ""}, "FIELD_ENCRYPTION_KEYS must be set in the production profile"),
    ({"FIELD_ENCRYPTION_KEYS": "short"}, "each of FIELD_ENCRYPTION_KEYS needs at least 32 characters"),
    ({"FIELD_ENCRYPTION_KEYS": PRODUCTION_ENV["SECRET_KEY"]}, "the newest FIELD_ENCRYPTION_KEYS key must not be SECRET_KEY"),
    ({"WEBHOOK_ALLOW_HTTP": "true"}, "WEBHOOK_ALLOW_HTTP cannot be on in the production profile"),
    ({"WEBHOOK_ALLOWED_PRIVATE_NETWORKS": "10.0.0.0/8,intranet"}, "'intranet' is not a network"),
])
def test_production_profile_refuses_unsafe_secret_and_webhook_settings(change, refusal):
    result = _run_manage(["check"], {**PRODUCTION_ENV, **change})
    assert result.returncode != 0
    assert refusal in result.stderr


def test_embedded_services_are_reused_not_restarted():
    from config import embedded

    first_pid = embedded._postmaster_info().pid
    assert embedded.postgres_url().startswith("postgresql://")
    assert embedded._postmaster_info().pid == first_pid
    redis_pid = embedded._redis_pid()
    embedded.redis_url()
    assert embedded._redis_pid() == redis_pid


def test_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/mints:", "/api/v1/redemptions:", "/api/v1/products:", "/api/v1/wallets:"):
        assert path in text
    assert "kyc_expired" in text and "Idempotency-Key" in text


def test_a_process_that_started_the_server_and_stopped_it_can_start_it_again():
    # The restart tests do this in the test session's own process; on a fresh checkout that process is the
    # one that first started the server. A server of its own, under the project: run as root, the server
    # runs as another user, who cannot enter pytest's private directories.
    data_dir = ROOT / ".data" / f"restart-{os.getpid()}-{time.monotonic_ns()}"
    script = ("from config import embedded\n"
              "embedded.postgres_url(); first = embedded._postmaster_info().pid\n"
              "embedded.stop_postgres(); assert embedded._postmaster_info() is None\n"
              "embedded.postgres_url(); second = embedded._postmaster_info().pid\n"
              "print('restarted', first != second)\n"
              "embedded.stop_postgres()\n")
    try:
        result = run([sys.executable, "-c", script], env=command_env(ISSUER_DATA_DIR=str(data_dir)))
        assert result.returncode == 0, describe(result)
        assert result.stdout.strip().splitlines()[-1] == "restarted True", describe(result)
    finally:
        run([sys.executable, "-m", "config.embedded", "stop"], env=command_env(ISSUER_DATA_DIR=str(data_dir)))
        shutil.rmtree(data_dir, ignore_errors=True)
