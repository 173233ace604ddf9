#!/usr/bin/env python
"""API load: 32 concurrent market-maker clients creating signed, idempotent mint requests against the
production server (gunicorn, ISSUER_ENV=production) on the embedded PostgreSQL, and, in the same run,
the same server's rate on an authenticated no-op (POST /api/v1/signature-check: the full API-key and
RFC 9421 verification path, no work) as the framework's ceiling.

Requests are signed before the clock starts (signatures stay valid for 5 minutes, and each carries a
fresh nonce), so the load generator spends its CPU on HTTP, not on signing: both share the machine's
two cores with the server. The CPU each request cost the server, PostgreSQL and the client is reported
per phase.

Closed-loop clients measure throughput, but their latency is only queueing (32 clients at X requests/s
wait 32/X s on average, whatever the server does). So the same mints are also sent open loop at fixed
offered rates (--paced-rates), where latency counts from when a request was due: the latency a market
maker sees at that load, or, if the server cannot keep up, how far behind it falls. Prints one JSON line.

    .venv/bin/python bench/api_load.py [--seconds 20] [--clients 32] [--workers 4] [--threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "bench_api"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fresh_database_url() -> str:
    import psycopg

    if os.environ.get("DATABASE_URL"):
        base = os.environ["DATABASE_URL"]
    else:
        os.environ.setdefault("ISSUER_ENV", "test")
        from config import embedded

        base = embedded.postgres_url("postgres")
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return urlunsplit(urlsplit(base)._replace(path=f"/{DATABASE}"))


def seed(clients: int):
    """One product and `clients` approved market makers, each with a verified wallet and an API key."""
    from decimal import Decimal

    from custody.models import Broker, ChainDeployment, Custodian, Security, SimulatedPrice, TokenProduct
    from mint_redeem.models import ProductTerms
    from tests.compliance.factories import make_market_maker

    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    custodian = Custodian.objects.create(code="bny", name="Custody Bank")
    broker = Broker.objects.create(code="sim", name="Simulated", custodian=custodian)
    SimulatedPrice.objects.create(broker=broker, security=security, price=Decimal("200"))
    product = TokenProduct.objects.create(symbol="AAPLx", security=security, multiplier=Decimal(1))
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address="0x" + "ab" * 20)
    ProductTerms.objects.create(product=product, broker=broker, custodian=custodian, reference_price=Decimal("200"))
    makers = []
    for _ in range(clients):
        makers.append(make_market_maker(chains=("ethereum",), daily_limit_cents=10**15, max_request_cents=10**12))
    return makers


def presign(makers, per_client: int, path: str, payload_for) -> list[list[tuple[str, dict, bytes]]]:
    from tests.compliance.factories import sign_request

    plans = []
    for mm in makers:
        plan = []
        for i in range(per_client):
            body = json.dumps(payload_for(mm, i)).encode()
            headers = sign_request(mm.credentials, "POST", path, body, host="127.0.0.1",
                                   idempotency_key=secrets.token_hex(16))
            headers["Content-Type"] = "application/json"
            plan.append((path, headers, body))
        plans.append(plan)
    return plans


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(database_url: str, broker_url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "ISSUER_ENV": "production",
        "SECRET_KEY": os.environ["SECRET_KEY"],
        # The bench (test profile) stores API keys' HMAC secrets under SECRET_KEY; production writes with a
        # key of its own and still decrypts with the older one.
        "FIELD_ENCRYPTION_KEYS": f"{secrets.token_urlsafe(40)},{os.environ['SECRET_KEY']}",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_DEFAULT_QUEUE": "bench-api",  # nothing consumes it: the bench measures the request path
        "EVM_CHAINS": "",  # production names each chain's node; the request path needs none
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "600",
        # The per-key rate limiter still runs (its Redis round trip is part of the path measured) but
        # never refuses: the bench measures the server, not the limit.
        "API_RATE_LIMIT_PER_S": "1000000",
        "API_RATE_LIMIT_BURST": "1000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
         "--log-level", "warning", "--keep-alive", "30"],
        cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def _client_process(group: int, port: int, plans, seconds: float, start_at: float, interval: float | None,
                    out) -> None:
    """Run one thread per plan, each sending its pre-signed requests over one keep-alive connection:
    back to back (closed loop), or one every `interval` seconds (open loop). In the open loop a request's
    latency counts from when it was due, not when it could be sent, so a server that falls behind shows
    it (no coordinated omission)."""
    results = []
    lock = threading.Lock()

    def run(index: int, plan):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, statuses = [], {}
        stop_at = start_at + seconds
        # Spread the open-loop clients evenly over one interval.
        due = start_at + (interval * index / len(plans) if interval else 0.0)
        while time.time() < start_at:
            time.sleep(0.001)
        for path, headers, body in plan:
            if interval:
                if due >= stop_at:
                    break
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
                began_wall = due
                due += interval
            elif time.time() >= stop_at:
                break
            else:
                began_wall = time.time()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies.append(time.time() - began_wall)
            statuses[response.status] = statuses.get(response.status, 0) + 1
        with lock:
            results.append((index, latencies, statuses, time.time()))
        conn.close()

    threads = [threading.Thread(target=run, args=(i, plan)) for i, plan in enumerate(plans)]
    began_cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((group, results, time.process_time() - began_cpu))


def _cpu_seconds(match) -> float:
    """CPU time (user + system) so far of every process whose command line matches."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not match(cmdline):
                continue
            fields = stat.read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def _is_server(cmdline: str) -> bool:
    return "gunicorn" in cmdline and "config.wsgi" in cmdline


def _is_postgres(cmdline: str) -> bool:
    return cmdline.startswith("postgres") or "/bin/postgres" in cmdline


def _phase(port: int, plans, seconds: float, processes: int, rate: float | None = None) -> dict:
    """Run one phase. Closed loop (rate None): every client sends back to back. Open loop: `rate`
    requests/s in all. Returns the raw figures (see `summary`)."""
    queue = multiprocessing.Queue()
    start_at = time.time() + 2.0
    interval = len(plans) / rate if rate else None
    indexed = list(enumerate(plans))
    groups = [group for group in (indexed[i::processes] for i in range(processes)) if group]
    procs = [multiprocessing.Process(target=_client_process, args=(
        number, port, [plan for _i, plan in group], seconds, start_at, interval, queue))
        for number, group in enumerate(groups)]
    for proc in procs:
        proc.start()
    while time.time() < start_at:
        time.sleep(0.01)
    server_cpu, postgres_cpu = _cpu_seconds(_is_server), _cpu_seconds(_is_postgres)
    outputs = [queue.get() for _ in procs]
    server_cpu, postgres_cpu = _cpu_seconds(_is_server) - server_cpu, _cpu_seconds(_is_postgres) - postgres_cpu
    for proc in procs:
        proc.join()
    sent = [0] * len(plans)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ended = start_at
    # Each process numbered its threads from 0; map them back to the plans they ran.
    for number, results, _cpu in outputs:
        for local_index, lats, codes, finished in results:
            sent[groups[number][local_index][0]] = len(lats)
            latencies += lats
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count
            ended = max(ended, finished)
    return {"latencies": latencies, "statuses": statuses, "seconds": ended - start_at, "sent": sent,
            "exhausted": any(n == len(plan) for n, plan in zip(sent, plans, strict=True)),
            "cpu": {"server": server_cpu, "postgres": postgres_cpu, "client": sum(cpu for _n, _r, cpu in outputs)},
            "rate": rate}


def summary(phases: list[dict]) -> dict:
    """Figures over one or more phases of the same kind (their time and requests added up)."""
    latencies = sorted(lat for phase in phases for lat in phase["latencies"])
    seconds = sum(phase["seconds"] for phase in phases)
    statuses: dict[int, int] = {}
    for phase in phases:
        for code, count in phase["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    def per_request(name: str) -> float:
        return round(sum(phase["cpu"][name] for phase in phases) * 1000 / len(latencies), 2)

    result = {"requests": len(latencies), "seconds": round(seconds, 2),
              "requests_per_s": round(len(latencies) / seconds, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
              "statuses": {str(k): v for k, v in sorted(statuses.items())},
              "plan_exhausted": any(phase["exhausted"] for phase in phases),
              # Where the two cores went, per request (the client shares them with the server).
              "cpu_ms_per_request": {name: per_request(name) for name in ("server", "postgres", "client")}}
    if phases[0]["rate"]:
        result["offered_per_s"] = phases[0]["rate"]
    return result


class Plans:
    """Pre-signed requests per client, handed out in order across phases (each is sent at most once)."""

    def __init__(self, plans):
        self.plans = plans
        self.next = [0] * len(plans)

    def take(self, count: int | None = None):
        return [plan[start:start + count] if count else plan[start:]
                for plan, start in zip(self.plans, self.next, strict=True)]

    def used(self, phase: dict) -> dict:
        self.next = [start + n for start, n in zip(self.next, phase["sent"], strict=True)]
        return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="per closed-loop measurement, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--max-rate", type=int, default=1000, help="requests/s to pre-sign for")
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--paced-rates", default="300,100",
                        help="open-loop mint rates (requests/s in all) to measure latency at; empty for none")
    args = parser.parse_args()

    database_url = fresh_database_url()
    os.environ["DATABASE_URL"] = database_url
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ.setdefault("ISSUER_ENV", "test")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    log(f"migrating {DATABASE} ...")
    call_command("migrate", verbosity=0)
    log(f"seeding {args.clients} market makers ...")
    makers = seed(args.clients)
    rates = [float(r) for r in args.paced_rates.split(",") if r.strip()]
    per_client = int(args.max_rate * (args.seconds + 5) / args.clients) + 50
    paced_per_client = [int(rate * (args.paced_seconds + 2) / args.clients) + 10 for rate in rates]
    log(f"pre-signing {per_client} requests per client ...")
    mint_plans = presign(makers, per_client + sum(paced_per_client), "/api/v1/mints", lambda mm, i: {
        "product": "AAPLx", "chain": "ethereum", "quantity": "1", "wallet": mm.wallets["ethereum"].pk,
        "funding": "cash"})
    noop_plans = presign(makers, per_client, "/api/v1/signature-check", lambda mm, i: {})
    connections.close_all()

    port = free_port()
    server = start_server(database_url, settings.CELERY_BROKER_URL, port, args.workers, args.threads)
    try:
        noop, mint = Plans(noop_plans), Plans(mint_plans)
        log("warming up ...")
        noop.used(_phase(port, noop.take(20), 3, args.client_processes))
        # The no-op ceiling and the mints alternate in short rounds, so a shift in the machine's speed
        # (a shared host) touches both alike and their ratio stays meaningful.
        ceiling_rounds, mint_rounds = [], []
        slice_s = args.seconds / args.rounds
        for round_no in range(args.rounds):
            log(f"round {round_no + 1}/{args.rounds}: no-op then mints, {args.clients} clients, {slice_s:g} s each")
            ceiling_rounds.append(noop.used(_phase(port, noop.take(), slice_s, args.client_processes)))
            mint_rounds.append(mint.used(_phase(port, mint.take(), slice_s, args.client_processes)))
            log(f"  no-op {summary(ceiling_rounds[-1:])['requests_per_s']}/s, "
                f"mints {summary(mint_rounds[-1:])['requests_per_s']}/s")
        ceiling, mints = summary(ceiling_rounds), summary(mint_rounds)
        paced = []
        for rate, count in zip(rates, paced_per_client, strict=True):
            log(f"mints at {rate:g}/s offered (open loop), {args.paced_seconds} s ...")
            paced.append(summary([mint.used(_phase(port, mint.take(count), args.paced_seconds,
                                                   args.client_processes, rate=rate))]))
    finally:
        server.terminate()
        server.wait(timeout=30)

    from mint_redeem.models import MintRequest

    created = MintRequest.objects.count()
    from ledger import integrity

    problems = integrity.verify(check_projections=False)
    result = {
        "bench": "api_load",
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "postgres": connections["default"].cursor().connection.info.server_version},
        "server": {"gunicorn_workers": args.workers, "threads": args.threads, "profile": "production"},
        "clients": args.clients,
        "mint_create": mints,
        "noop_ceiling": ceiling,
        "mint_vs_ceiling": round(mints["requests_per_s"] / ceiling["requests_per_s"], 3),
        "mint_paced": paced,
        "mints_recorded": created,
        "mints_answered_201": mints["statuses"].get("201", 0) + sum(p["statuses"].get("201", 0) for p in paced),
        "ledger_verify_problems": len(problems),
        "targets": {"requests_per_s>=300": mints["requests_per_s"] >= 300, "p99_ms<100": mints["p99_ms"] < 100,
                    "ceiling_share>=0.4": mints["requests_per_s"] / ceiling["requests_per_s"] >= 0.4},
    }
    print(json.dumps(result))
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
