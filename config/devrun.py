"""`make run`: bring the whole system up on the embedded defaults and keep it up until Ctrl-C.

Starts (or reuses) the embedded PostgreSQL and Redis, migrates, creates the demo superuser (its
password is printed once, on creation), seeds demo data, then runs the web server, a Celery worker,
a second one for webhook deliveries and Celery beat as child processes. Once they are up it runs the
demo's activity (`manage.py seed_demo --activity`: mints and redemptions end to end on the local chains,
a custodian statement, a reconciliation), printing progress; it is idempotent, so a run stopped half way
carries on at the next start. Ctrl-C (or any child dying) stops every child it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def _create_demo_superuser() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    if user_model.objects.filter(username="admin").exists():
        print("demo superuser 'admin' already exists (its password was printed when it was created)")
        return
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser("admin", "admin@example.invalid", password)
    print("=" * 72)
    print(f"  demo superuser created:  username 'admin'   password '{password}'")
    print("  (shown only this once)")
    print("=" * 72)


def _wait_healthy(url: str, timeout_s: float) -> bool:
    from config.celery import app

    deadline = time.monotonic() + timeout_s
    # The workers first, asked directly: /healthz would answer 503 (and log it) for every probe while they
    # boot, which on a normal start is no news.
    workers = [f"worker@{socket.gethostname()}", f"webhooks@{socket.gethostname()}"]
    while time.monotonic() < deadline:
        try:
            if len(app.control.ping(destination=workers, timeout=1.0) or []) == len(workers):
                break
        except Exception:  # noqa: BLE001 - the broker not reachable yet: /healthz will say so below
            break
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own localhost URL
                if response.status == 200:
                    return True
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    os.environ.setdefault("ISSUER_ENV", "development")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")

    _manage("migrate", "--noinput")
    _create_demo_superuser()
    _manage("seed_demo")
    from django.conf import settings

    children = [
        subprocess.Popen([PYTHON, "manage.py", "runserver", "--noreload", f"{host}:{port}"], cwd=ROOT),
        subprocess.Popen([PYTHON, "-m", "celery", "-A", "config", "--quiet", "worker", "--loglevel=INFO",
                          "--concurrency=2", f"--queues={settings.CELERY_TASK_DEFAULT_QUEUE}",
                          "--hostname=worker@%h"], cwd=ROOT),
        # Webhook deliveries have a worker of their own: a slow receiver never holds up a mint.
        subprocess.Popen([PYTHON, "-m", "celery", "-A", "config", "--quiet", "worker", "--loglevel=INFO",
                          "--concurrency=2", f"--queues={settings.CELERY_WEBHOOK_QUEUE}",
                          "--hostname=webhooks@%h"], cwd=ROOT),
        subprocess.Popen([PYTHON, "-m", "celery", "-A", "config", "--quiet", "beat", "--loglevel=INFO"], cwd=ROOT),
    ]

    stopping = []

    def request_stop(signum, _frame):
        stopping.append(signum)

    # Installed explicitly: a shell that starts us in the background ignores SIGINT, and Python then
    # never raises KeyboardInterrupt, so Ctrl-C or `kill -INT` would leave the children running.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    base = f"http://{host}:{port}"
    try:
        healthy = _wait_healthy(f"{base}/healthz", timeout_s=180)
        print()
        print(f"  admin        {base}/admin/")
        print(f"  API docs     {base}/api/docs/")
        print(f"  API schema   {base}/api/schema/")
        print(f"  health       {base}/healthz  ({'green' if healthy else 'NOT healthy yet'})")
        print("  Ctrl-C stops everything started here; the embedded databases keep running")
        print("  (`make stop` stops them).")
        print()
        # Not a member of `children`: it ends by itself when the demo history is in place.
        activity = subprocess.Popen([PYTHON, str(ROOT / "manage.py"), "seed_demo", "--activity"], cwd=ROOT)
        while not stopping and all(child.poll() is None for child in children):
            if activity is not None and activity.poll() is not None:
                print("demo activity " + ("done: the admin, the API and the chains show its history"
                                          if activity.returncode == 0 else f"stopped (exit {activity.returncode})"))
                activity = None
            time.sleep(0.2)
        if activity is not None:
            children.append(activity)  # stopped with the rest
        if stopping:
            print("stopping...", file=sys.stderr)
            return 0
        print("a child process exited; stopping the rest", file=sys.stderr)
        return 1
    finally:
        _stop(children)


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    sys.exit(main())
