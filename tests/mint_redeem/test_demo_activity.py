"""`make run`'s living demo, run as devrun runs it (fresh processes: `manage.py seed_demo`, then
`manage.py seed_demo --activity` with a real Celery worker): mints and redemptions end on the local
chains (two EVM chains and Solana), a second run creates and sends nothing new, and the database and
the chains agree."""

from __future__ import annotations

import pytest

from tests.subprocesses import command_env, describe, manage

pytestmark = [pytest.mark.celery, pytest.mark.slow]


def _chain_figures():
    from chains.evm import evm_chain
    from chains.solana import solana_chain
    from custody.models import ChainDeployment
    from ledger import selectors

    figures = {}
    for deployment in ChainDeployment.objects.filter(chain__in=["ethereum", "base", "solana"]).select_related("product"):
        product = deployment.product
        if deployment.chain == "solana":  # the mint's supply, read from the local Solana RPC
            on_chain = solana_chain(deployment.chain).supply(deployment.address)[0]
        else:
            on_chain = evm_chain(deployment.chain).total_supply(deployment.address)
        ledger = selectors.balance(account=product.tokens_account(deployment.chain),
                                   asset=product.token_asset(deployment.chain)).posted
        figures[(product.symbol, deployment.chain)] = (on_chain, ledger)
    return figures


def test_the_demo_runs_end_to_end_and_a_second_run_changes_nothing(committed, celery_worker_process, tmp_path):
    from config.celery import app
    from ledger import integrity
    from ledger.models import Event
    from mint_redeem.demo_activity import ACTIVITY
    from mint_redeem.models import ChainOperation, MintRequest, Redemption

    env = command_env(CELERY_DEFAULT_QUEUE=app.conf.task_default_queue,
                      DEMO_CREDENTIALS_FILE=str(tmp_path / "demo-credentials.json"))
    seeded = manage("seed_demo", env=env, timeout_s=300)
    assert seeded.returncode == 0, describe(seeded)
    assert "demo: deployed AAPLx on base at 0x" in seeded.stdout  # progress printed as it goes
    first = manage("seed_demo", "--activity", "--timeout", "240", env=env, timeout_s=900)
    assert first.returncode == 0, describe(first) + f"\nworker log: {celery_worker_process.log_path}"
    assert "reconciliation" in first.stdout

    by_reference = {r.idempotency_key: r for model in (MintRequest, Redemption) for r in model.objects.all()}
    for step in ACTIVITY:
        request = by_reference[step.reference]
        assert request.state == (step.until or request.state), (step, request.state)
    assert by_reference["demo-mint-amzn-eth-cash"].state not in ("accepted", "failed")  # funded and moving
    assert by_reference["demo-mint-crcl-base-cash"].state == "accepted"  # waiting for the wire: in the queue
    after_first = (Event.objects.count(), ChainOperation.objects.count(), _chain_figures())

    # Seed and run again: nothing new is created, sent or recorded.
    assert manage("seed_demo", env=env, timeout_s=300).returncode == 0
    second = manage("seed_demo", "--activity", env=env, timeout_s=600)
    assert second.returncode == 0, describe(second)
    assert "tokens sent" not in second.stdout and "imported" not in second.stdout
    assert (Event.objects.count(), ChainOperation.objects.count(), _chain_figures()) == after_first

    # The chains and the ledger agree, token by token; minted tokens are really out there.
    figures = _chain_figures()
    assert all(on_chain == ledger for on_chain, ledger in figures.values()), figures
    assert figures[("AAPLx", "ethereum")][0] == 225 * 10**17  # 25 minted, 2.5 redeemed and burned
    assert figures[("TSLAx", "base")][0] == 875 * 10**16  # 10 minted, 1.25 redeemed
    assert figures[("AAPLx", "solana")][0] == 65 * 10**8  # 8 minted, 1.5 sent with its memo and burned (9 decimals)
    assert "demo: deployed AAPLx on solana at " in seeded.stdout
    solana_redemption = by_reference["demo-redeem-aapl-sol"]
    assert solana_redemption.state == "shares_delivered" and solana_redemption.deposit_tx  # the transfer's signature
    assert integrity.verify() == []
