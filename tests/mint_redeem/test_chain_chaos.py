"""Chaos: many mints and redemptions on anvil while the Celery worker is killed with SIGKILL at random
moments and restarted. Afterwards the chain and the ledger agree to the base unit, every reference is
on chain exactly once, and the ledger verifies.

The test stands in for the beat (it sends the same sweeps every second: advance_due, execute_all,
watch_all), since a message a killed worker held is only redelivered much later. Sizes come from the
environment (CHAOS_MINTS, CHAOS_REDEMPTIONS) so a longer run can be asked for.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from chains.evm import evm_chain, ref_bytes
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import MintRequest, Redemption
from tests.conftest import ROOT, database_url_for_tests

from .conftest import holder_of

pytestmark = [pytest.mark.celery, pytest.mark.reliability]

MINTS = int(os.environ.get("CHAOS_MINTS", "300"))
REDEMPTIONS = int(os.environ.get("CHAOS_REDEMPTIONS", "50"))
DEADLINE_S = float(os.environ.get("CHAOS_DEADLINE_S", "240"))
SWEEPS = ("mint_redeem.advance_due", "chains.execute_all", "chains.watch_all")


class KillableWorker:
    """A real `celery worker` in a process group of its own, so SIGKILL takes its pool children too."""

    def __init__(self, queue: str, env: dict, log_path):
        self.queue, self.env, self.log_path = queue, env, log_path
        self.process: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115 - the child holds it; closed with the test
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2",
             "--pool=prefork", f"--queues={self.queue},{self.queue}-webhooks", f"--hostname={self.queue}@%h",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the worker answers a ping (a kill before then would only test Celery's start-up)."""
        from config.celery import app

        deadline = time.monotonic() + timeout_s
        while not app.control.ping(destination=[f"{self.queue}@{os.uname().nodename}"], timeout=0.5):
            assert self.process.poll() is None, f"the worker exited; see {self.log_path}"
            assert time.monotonic() < deadline, f"the worker did not come up; see {self.log_path}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def killable_worker(committed, settings):
    from config.celery import app

    queue = f"chaos-{uuid.uuid4().hex[:8]}"
    saved = app.conf.task_default_queue, app.conf.webhook_queue
    app.conf.task_default_queue, app.conf.webhook_queue = queue, f"{queue}-webhooks"
    env = {**os.environ, "ISSUER_ENV": "test", "DATABASE_URL": database_url_for_tests(),
           "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "CELERY_DEFAULT_QUEUE": queue,
           "CELERY_WEBHOOK_QUEUE": f"{queue}-webhooks", "DB_CONN_MAX_AGE": "0"}
    worker = KillableWorker(queue, env, ROOT / ".data" / f"celery-{queue}.log")
    worker.start()
    worker.wait_ready()
    try:
        yield worker
    finally:
        worker.stop()
        app.conf.task_default_queue, app.conf.webhook_queue = saved


@pytest.mark.timeout(DEADLINE_S + 120)
def test_mints_and_burns_exactly_once_while_the_worker_is_killed(killable_worker, evm_market, mm, operations):
    from config.celery import app

    evm = evm_chain("ethereum")
    token, wallet = evm_market.token, mm.wallets["ethereum"]
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "12")))
    stop = threading.Event()

    def chaos() -> None:
        # Killed at a random moment of its work, then restarted (and given time to come up).
        while not stop.wait(rng.uniform(0.2, 3.0)):
            killable_worker.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            killable_worker.start()
            killable_worker.wait_ready()

    def beat() -> None:
        while not stop.wait(1.0):
            for name in SWEEPS:
                app.send_task(name)

    threads = [threading.Thread(target=chaos, daemon=True), threading.Thread(target=beat, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        mints = []
        for n in range(MINTS):
            quantity = str(1 + n % 3)
            mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                                quantity=quantity, wallet_id=wallet.pk, funding="in_kind",
                                                actor="test")
            services.mint_shares_receive(mint=mint, custodian_confirmation=f"CHAOS-{n}", user=operations)
            mints.append(mint.pk)

        # Redemptions of 1 token each, once the wallet holds enough: the holder redeems them on chain.
        holder = holder_of(mm)
        redemptions = []
        deadline = time.monotonic() + DEADLINE_S
        while len(redemptions) < REDEMPTIONS:
            assert time.monotonic() < deadline, f"too few tokens minted in time; see {killable_worker.log_path}"
            if evm.balance_of(token, wallet.address) < 10**18:
                time.sleep(0.5)
                continue
            redemption = services.redemption_request_create(
                participant=mm.participant, product_symbol="AAPLx", chain="ethereum", quantity="1",
                wallet_id=wallet.pk, payout="in_kind", actor="test")
            signed = evm.sign_call(signer=holder, token=token, function="redeem",
                                   args=[10**18, ref_bytes(redemption.stream)], nonce=evm.pending_nonce(holder.address))
            evm.send_raw(signed)
            assert evm.wait_for_receipt(signed.tx_hash).succeeded
            redemptions.append(redemption.pk)

        while True:
            minted = MintRequest.objects.filter(pk__in=mints, state="minted").count()
            burned = Redemption.objects.filter(pk__in=redemptions, state="burned").count()
            if minted == MINTS and burned == REDEMPTIONS:
                break
            assert time.monotonic() < deadline, (
                f"{minted}/{MINTS} minted, {burned}/{REDEMPTIONS} burned; see {killable_worker.log_path}")
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert killable_worker.kills >= 3, f"the worker was killed {killable_worker.kills} times: the test proves little"

    minted_units = sum(int(m.token_base_units) for m in MintRequest.objects.filter(pk__in=mints))
    burned_units = sum(int(r.token_base_units) for r in Redemption.objects.filter(pk__in=redemptions))
    outstanding = selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum")
    assert evm.total_supply(token) == outstanding.posted == minted_units - burned_units
    assert outstanding.pending_in == 0

    contract = evm.token(token)
    minted_refs = [log["args"]["ref"] for log in contract.events.Minted.get_logs(from_block=0)]
    burned_refs = [log["args"]["ref"] for log in contract.events.BurnedFromVault.get_logs(from_block=0)]
    assert sorted(minted_refs) == sorted(ref_bytes(f"mint-{pk}") for pk in mints)  # each exactly once
    assert sorted(burned_refs) == sorted(ref_bytes(f"redemption-{pk}") for pk in redemptions)
    assert integrity.verify() == []
