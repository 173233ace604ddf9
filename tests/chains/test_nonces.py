"""Nonces: never shared by two workers, never skipped, never forgotten by a restart."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from chains.models import SignerNonce
from chains.nonces import nonce_assign
from tests.chains.conftest import holder, mint


def _fresh_address() -> str:
    from eth_account import Account

    return Account.create().address


def test_concurrent_workers_get_distinct_consecutive_nonces(committed):
    """Eight threads, each with its own database connection, take five nonces each while holding the
    row for a moment (as signing does); every nonce from the chain's count on is taken exactly once."""
    address = _fresh_address()
    threads_n, per_thread = 8, 5
    start = threading.Barrier(threads_n)
    taken: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker():
        try:
            start.wait()
            for _ in range(per_thread):
                with transaction.atomic():
                    nonce = nonce_assign(chain="ethereum", address=address, chain_pending_nonce=lambda: 3)
                    time.sleep(0.002)  # sign and record while the row is held
                with lock:
                    taken.append(nonce)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(taken) == list(range(3, 3 + threads_n * per_thread))
    assert SignerNonce.objects.get(chain="ethereum", address=address).next_nonce == 3 + threads_n * per_thread


@pytest.mark.django_db
def test_the_first_nonce_of_a_signer_is_the_chains_pending_count(evm, token):
    # The operator has sent transactions on this chain (the token fixture's deploy grants it roles, and
    # the test suite mints with it); a signer seen for the first time starts where the chain is.
    SignerNonce.objects.all().delete()
    from chains.signers import signer_for

    operator = signer_for(evm.name, "operator")
    pending = evm.pending_nonce(operator.address)
    assert nonce_assign(chain=evm.name, address=operator.address,
                        chain_pending_nonce=lambda: evm.pending_nonce(operator.address)) == pending


@pytest.mark.django_db
def test_a_rolled_back_transaction_gives_its_nonce_back():
    address = _fresh_address()
    assert nonce_assign(chain="base", address=address, chain_pending_nonce=lambda: 0) == 0
    with pytest.raises(RuntimeError), transaction.atomic():
        assert nonce_assign(chain="base", address=address, chain_pending_nonce=lambda: 0) == 1
        raise RuntimeError("crashed before the signed transaction was recorded")
    assert nonce_assign(chain="base", address=address, chain_pending_nonce=lambda: 0) == 1


@pytest.mark.django_db
def test_the_row_survives_a_restart_and_never_moves_back_but_catches_up_with_the_chain():
    address = _fresh_address()
    assert nonce_assign(chain="arbitrum", address=address, chain_pending_nonce=lambda: 0, count=3) == 0
    # Our three signed transactions are not broadcast yet: the chain still counts 0. A new process (the
    # row is all it knows) goes on after them, not back to the chain's count.
    assert nonce_assign(chain="arbitrum", address=address, chain_pending_nonce=lambda: 0) == 3
    # The key was used elsewhere (or the database restored from a backup): the chain is ahead; follow it.
    assert nonce_assign(chain="arbitrum", address=address, chain_pending_nonce=lambda: 10) == 10
    assert SignerNonce.objects.get(chain="arbitrum", address=address).next_nonce == 11


@pytest.mark.django_db
def test_nonces_from_the_manager_are_accepted_by_the_chain_in_order(evm, token):
    alice = holder(4)
    from chains.evm import Mint, ref_bytes

    receipts = [mint(evm, token, [Mint(alice.address, 1, ref_bytes(f"mint-{n}"))]) for n in range(3)]
    assert all(r.succeeded for r in receipts)
    assert evm.total_supply(token) == 3
