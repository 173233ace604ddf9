"""`make run` as a developer meets it: `python -m config.devrun` (what the Makefile runs) started headless in a
fresh process, left to come up until it prints its URLs with a green health check, then stopped with Ctrl-C
(SIGINT). What it printed on the way is for people: log records in the short console format (time, level,
logger, message), never JSON, and no ERROR line and no traceback on a normal start (a worker still booting is
no error). The database is the test database and the queues are this test's own, so a developer's running
`make run` is not disturbed."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.conftest import ROOT
from tests.subprocesses import command_env

pytestmark = [pytest.mark.celery, pytest.mark.reliability]

START_DEADLINE_S = 400  # migrate, seed (deploying the demo tokens), three Celery processes: slow when shared
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO |WARNING|ERROR|CRITICAL) [\w.]+: ")
READY = re.compile(r"^\s+health\s+http://\S+/healthz\s+\((green|NOT healthy yet)\)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(START_DEADLINE_S + 120)
def test_make_run_starts_with_readable_logs_and_no_error(committed):
    queue = f"devrun-{uuid.uuid4().hex[:8]}"
    env = command_env(ISSUER_ENV="development", PORT=str(_free_port()), CELERY_DEFAULT_QUEUE=queue,
                      CELERY_WEBHOOK_QUEUE=f"{queue}-webhooks")
    env.pop("LOG_FORMAT", None)  # the development profile's own default
    process = subprocess.Popen([sys.executable, "-m", "config.devrun"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not any(READY.match(line) for line in lines):
            assert process.poll() is None, "make run exited:\n" + "".join(lines[-80:])
            assert time.monotonic() < deadline, "make run did not come up:\n" + "".join(lines[-80:])
            time.sleep(0.5)
        time.sleep(2)  # a beat tick and a sweep and sweeps: still part of a normal start
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        reader.join(timeout=10)
    output = "".join(lines)

    assert [line for line in lines if READY.match(line)][0].rstrip().endswith("(green)"), output[-4000:]
    assert process.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output
    assert not [line for line in lines if re.search(r"\bERROR\b|\bCRITICAL\b", line)], output
    assert not [line for line in lines if line.lstrip().startswith('{"')], "JSON log lines on a terminal"
    records = [line for line in lines if LOG_LINE.match(line)]
    assert records, "no log record in the console format:\n" + output[-4000:]
