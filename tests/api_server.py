"""Real processes for crash tests: the API under gunicorn (started, killed, restarted), a connection that
holds a row lock the API needs (so a request stops mid-transaction, deterministically, until released),
a second embedded PostgreSQL that a test may restart, and a signed HTTP client for all of them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests

from tests.compliance.factories import sign_request

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout_s: float = 20, interval_s: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class ApiServer:
    """gunicorn serving the API on `database_url`, in a process group of its own so `kill()` takes the
    master and its worker down at once, with SIGKILL: no cleanup code runs, as in a crash."""

    def __init__(self, database_url: str, broker_url: str, *, log_path: Path, threads: int = 4):
        self.database_url, self.broker_url, self.threads = database_url, broker_url, threads
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = log_path  # appended to: servers of one test share it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiServer:
        env = {
            **os.environ,
            "ISSUER_ENV": "test",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_DEFAULT_QUEUE": f"test-server-{uuid.uuid4().hex[:8]}",  # nothing consumes it
            "DB_CONN_MAX_AGE": "60",  # kept across requests, as in production: they must survive a restart
            "LOG_LEVEL": "WARNING",
        }
        self.log_path.parent.mkdir(exist_ok=True)
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--threads", str(self.threads), "--worker-class", "gthread",
                 "--timeout", "120", "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {self.log_path}")
            try:
                requests.get(self.url + "/healthz", timeout=5)  # any answer will do (no worker: 503)
                return True
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading Django
                return False

        try:
            wait_until(answers, timeout_s=60, interval_s=0.2, what="gunicorn to answer")
        except BaseException:
            self.kill()  # not left running behind a failed start
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the whole server, mid-request or not."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class SignedHttp:
    """A market maker's client over real HTTP: each attempt is signed afresh (a new nonce), and a retry
    reuses its Idempotency-Key, as a real client does."""

    def __init__(self, credentials, base_url: str):
        self.credentials, self.base_url = credentials, base_url

    def post(self, path: str, payload: dict, *, key: str, timeout_s: float = 60) -> requests.Response:
        body = json.dumps(payload).encode()
        host = self.base_url.split("://", 1)[1]
        headers = sign_request(self.credentials, "POST", path, body, host=host, idempotency_key=key)
        return requests.post(self.base_url + path, data=body, timeout=timeout_s,
                             headers={**headers, "Content-Type": "application/json"})

    def post_in_background(self, path: str, payload: dict, *, key: str) -> dict:
        """Send in a thread; the returned dict gets "response" or "error" when the request ends."""
        outcome: dict = {}

        def send():
            try:
                outcome["response"] = self.post(path, payload, key=key)
            except requests.RequestException as exc:
                outcome["error"] = exc

        outcome["thread"] = threading.Thread(target=send, daemon=True)
        outcome["thread"].start()
        return outcome


class RowLock:
    """Holds `SELECT ... FOR UPDATE` on one row through its own connection until released, so a request
    that needs that row waits there, in the middle of its transaction."""

    def __init__(self, database_url: str, table: str, row_id: int):
        self.database_url = database_url
        self.conn = psycopg.connect(database_url)
        self.conn.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [row_id])  # noqa: S608 (test)
        self.pid = self.conn.info.backend_pid

    def waiters(self) -> list[int]:
        """Backends (other than ours) that wait on a lock held by this connection."""
        with psycopg.connect(self.database_url, autocommit=True) as probe:
            rows = probe.execute("SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                                 [self.pid]).fetchall()
        return [row[0] for row in rows]

    def release(self, *, commit: bool = False) -> None:
        """End the lock's transaction: rolled back, or committed with what the test wrote through `conn`."""
        if self.conn.closed:
            return
        try:
            self.conn.commit() if commit else self.conn.rollback()
        except psycopg.OperationalError:
            pass  # the server went away, and the lock with it
        finally:
            self.conn.close()


def blocked_backends(database_url: str) -> list[tuple[int, list[int], str]]:
    """(pid, blocking pids, wait event) of every backend waiting on a lock."""
    with psycopg.connect(database_url, autocommit=True) as probe:
        return probe.execute(
            "SELECT pid, pg_blocking_pids(pid), wait_event FROM pg_stat_activity "
            "WHERE cardinality(pg_blocking_pids(pid)) > 0").fetchall()


def backend_alive(database_url: str, pid: int) -> bool:
    with psycopg.connect(database_url, autocommit=True) as probe:
        return probe.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is not None


def busy_sessions(database_url: str) -> list[tuple[int, str]]:
    """(pid, state) of every other session on the database that is running something."""
    with psycopg.connect(database_url, autocommit=True) as probe:
        return probe.execute("SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
                             "AND pid <> pg_backend_pid() AND state <> 'idle'").fetchall()
