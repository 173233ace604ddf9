"""No request may sit in a non-final state with nothing scheduled to move it: every state of both
lifecycles has a mover and a way to a final state, operations states have an admin action that leaves
them, and `manage.py requests_stuck` finds any request that is stuck all the same."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from mint_redeem.admin import MINT_ACTIONS, REDEMPTION_ACTIONS
from mint_redeem.lifecycle import (
    AUTOMATIC_STATES,
    MOVERS,
    MintLifecycle,
    RedemptionLifecycle,
    allowed_events,
    final_states,
    mover,
    next_state,
    states,
)
from mint_redeem.models import MintRequest
from tests.conftest import ROOT, database_url_for_tests

MACHINES = [("mint", MintLifecycle, MINT_ACTIONS), ("redemption", RedemptionLifecycle, REDEMPTION_ACTIONS)]


def reachable_finals(machine, start: str, in_kind: bool) -> bool:
    seen, frontier = {start}, [start]
    while frontier:
        state = frontier.pop()
        if state in final_states(machine):
            return True
        for event in allowed_events(machine, state, in_kind=in_kind):
            target = next_state(machine, state, event, in_kind=in_kind)
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return False


@pytest.mark.parametrize(("kind", "machine", "actions"), MACHINES)
@pytest.mark.parametrize("in_kind", [False, True])
def test_every_state_has_a_mover_and_a_way_out(kind, machine, actions, in_kind):
    for state in states(machine):
        if state in final_states(machine):
            assert state not in MOVERS[kind]
            continue
        who = mover(kind, state, in_kind=in_kind)
        assert who in ("transient", "task", "operations", "chain"), (kind, state)
        assert reachable_finals(machine, state, in_kind), (kind, state, in_kind)
        if who == "operations":
            # A person can act: the admin offers an action that leaves this state.
            leaving = set(allowed_events(machine, state, in_kind=in_kind)) & set(actions)
            assert leaving, (kind, state, in_kind)
        if who == "task":
            assert state in AUTOMATIC_STATES[kind]


def run_command(*args):
    env = {**{key: value for key, value in os.environ.items() if key != "DATABASE_OWNER_URL"},
           "DATABASE_URL": database_url_for_tests(), "ISSUER_ENV": "test"}
    return subprocess.run([sys.executable, "manage.py", "requests_stuck", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_finds_a_stuck_request_and_exits_nonzero(committed, market, mm, operations):
    from .test_money import new_cash_mint

    quiet = run_command()
    assert quiet.returncode == 0, quiet.stderr
    assert "no stuck requests" in quiet.stdout

    mint = new_cash_mint(mm)
    services_mint = MintRequest.objects.get(pk=mint.pk)
    # A mint in `minting` whose chain operation vanished, and one a task should have moved long ago.
    MintRequest.objects.filter(pk=services_mint.pk).update(state="minting")
    stale = new_cash_mint(mm, quantity="1")
    MintRequest.objects.filter(pk=stale.pk).update(state="settling",
                                                   updated_at=timezone.now() - timedelta(days=30))
    found = run_command()
    assert found.returncode == 1
    assert f"mint-{mint.pk}\tminting\twaits for the chain but has no live chain operation" in found.stdout
    assert f"mint-{stale.pk}\tsettling\tmoved by a task" in found.stdout
