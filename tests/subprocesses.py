"""Run the project's documented commands the way a user runs them: in a fresh process, from the
project root, exactly as the README prints them, with only the environment pointed at the test
database and broker.

A fresh process shares nothing with the test process (no open connection, no imported state), so it
catches what `call_command` cannot: code that only works because pytest already opened a connection.
It sees committed rows only, so tests that use it take the `committed` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, database_url_for_tests

# A nested make must not join the jobserver of a `make test` it runs under.
_MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell, pointed at the test database and broker (as the Celery
    worker fixture does)."""
    from django.conf import settings

    env = {key: value for key, value in os.environ.items() if key not in (*_MAKE_VARIABLES, "DATABASE_OWNER_URL")}
    if settings.DATABASE_OWNER_URL:
        # An operator's shell has both (migrate and `ledger rebuild` use the owner; nothing else does).
        env["DATABASE_OWNER_URL"] = database_url_for_tests(owner=True)
    env.update({
        "ISSUER_ENV": "test",
        "DATABASE_URL": database_url_for_tests(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DB_CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env or command_env(), capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def manage(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/python manage.py <args>` (the interpreter running the tests is the venv's)."""
    return run([sys.executable, "manage.py", *args], env=env, timeout_s=timeout_s)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """For assertion messages: what the process said, so a failure explains itself."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"


def assert_ledger_verifies(env: dict[str, str] | None = None) -> None:
    """`manage.py ledger verify` and `manage.py ledger rebuild --check`, each in a fresh process as an auditor
    runs them: the end of every reliability scenario (the hash chain, every invariant, and projections that a
    replay of the log reproduces exactly)."""
    verify = manage("ledger", "verify", env=env)
    assert verify.returncode == 0 and verify.stdout.strip() == "ledger verify OK", describe(verify)
    rebuild = manage("ledger", "rebuild", "--check", env=env)
    assert rebuild.returncode == 0 and rebuild.stdout.startswith("ledger rebuild matched: "), describe(rebuild)
