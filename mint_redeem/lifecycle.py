"""The mint and redeem lifecycles: one declaration of each transition graph (docs/architecture.md, section 4).

Every path that changes a request's state (API, admin, Celery tasks) goes through
`mint_redeem.services` which asks these machines whether the transition is allowed, so the graph
here is the whole truth; the README's diagrams are generated from it (`lifecycle_mermaid`).
"""

from __future__ import annotations

import functools

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

from config.api import DomainError


class TransitionRefused(DomainError):
    code = "transition_not_allowed"
    http_status = 409


class MintLifecycle(StateMachine):
    """Cash-funded: requested -> accepted -> funded -> order_placed -> filled -> settling -> settled
    -> minting -> minted. In kind: requested -> accepted -> shares_received -> minting -> minted.
    When the shares cost more than the cash received covers (cost + fee), a settled mint waits in
    topup_due until the shortfall is paid."""

    requested = State(initial=True)
    accepted = State()
    funded = State()
    order_placed = State()
    filled = State()
    settling = State()
    settled = State()
    shares_received = State()
    topup_due = State()
    minting = State()
    minted = State(final=True)
    rejected = State(final=True)
    cancelled = State(final=True)
    failed = State(final=True)

    accept = requested.to(accepted)
    reject = requested.to(rejected)
    fund = accepted.to(funded, cond="cash")
    place_order = funded.to(order_placed)
    fill = order_placed.to(filled)
    start_settling = filled.to(settling)
    settle = settling.to(settled)
    receive_shares = accepted.to(shares_received, cond="in_kind")
    start_minting = settled.to(minting) | shares_received.to(minting)
    request_topup = settled.to(topup_due, cond="cash")
    receive_topup = topup_due.to(settled)
    confirm_mint = minting.to(minted)
    # Once the order is claimed (order_placed) a cancel is refused: the broker may be filling it.
    cancel = requested.to(cancelled) | accepted.to(cancelled) | funded.to(cancelled)
    fail = (accepted.to(failed) | funded.to(failed) | order_placed.to(failed) | filled.to(failed)
            | settling.to(failed) | settled.to(failed) | shares_received.to(failed) | topup_due.to(failed)
            | minting.to(failed))


class RedemptionLifecycle(StateMachine):
    """requested -> tokens_received -> burning -> burned -> order_placed -> filled -> settling -> settled
    -> paid_out; in kind: burned -> shares_delivered. A sell order that ends with shares unsold goes
    back to burned for another order (retry_order), or after MAX_AUTOMATIC_ORDERS to sale_failed for
    operations to retry or fail; a failed redemption after the burn leaves the tokens' value owed."""

    requested = State(initial=True)
    tokens_received = State()
    burning = State()
    burned = State()
    order_placed = State()
    sale_failed = State()
    filled = State()
    settling = State()
    settled = State()
    paid_out = State(final=True)
    shares_delivered = State(final=True)
    rejected = State(final=True)
    cancelled = State(final=True)
    failed = State(final=True)

    reject = requested.to(rejected)
    receive_tokens = requested.to(tokens_received)
    start_burning = tokens_received.to(burning)
    confirm_burn = burning.to(burned)
    place_order = burned.to(order_placed, cond="cash")
    retry_order = order_placed.to(burned)
    give_up_order = order_placed.to(sale_failed)
    retry_sale = sale_failed.to(burned)
    fill = order_placed.to(filled)
    start_settling = filled.to(settling)
    settle = settling.to(settled)
    pay_out = settled.to(paid_out)
    deliver_shares = burned.to(shares_delivered, cond="in_kind")
    cancel = requested.to(cancelled)
    fail = (tokens_received.to(failed) | burning.to(failed) | burned.to(failed) | sale_failed.to(failed)
            | settled.to(failed))


# Who moves a request on from each non-final state. Every non-final state has exactly one mover and a
# path to a final state (a test over the graph holds this), so no request can sit with nothing
# scheduled to move it. "transient": left in the same transaction that enters it; "task": the beat's
# advance_due sweep and the task queued on entry; "operations": a person in the admin (the admin offers
# the action); "chain": the chain executor's outcome.
MOVERS = {
    "mint": {"requested": "transient", "accepted": "operations", "funded": "task", "order_placed": "task",
             "filled": "transient", "settling": "task", "settled": "task", "shares_received": "task",
             "topup_due": "operations", "minting": "chain"},
    "redemption": {"requested": "operations", "tokens_received": "transient", "burning": "chain",
                   "burned": "task", "order_placed": "task", "sale_failed": "operations", "filled": "transient",
                   "settling": "task", "settled": "operations"},
}
IN_KIND_MOVERS = {"mint": {}, "redemption": {"burned": "operations"}}
AUTOMATIC_STATES = {kind: tuple(s for s, mover in movers.items() if mover == "task") for kind, movers in MOVERS.items()}


def mover(kind: str, state: str, *, in_kind: bool) -> str | None:
    """Who moves a request of `kind` on from `state` (None for a final or unknown state)."""
    return (IN_KIND_MOVERS[kind].get(state) if in_kind else None) or MOVERS[kind].get(state)
MAX_AUTOMATIC_ORDERS = 3  # sell orders tried before a person decides


class _Mode:
    """What the guards see: whether the request is settled in cash or in kind."""

    def __init__(self, in_kind: bool):
        self.in_kind = in_kind
        self.cash = not in_kind


@functools.cache  # a pure function of the declaration; building a machine costs more than the request
def next_state(machine_class: type[StateMachine], current: str, event: str, *, in_kind: bool) -> str:
    """The state `event` leads to from `current`, or TransitionRefused."""
    machine = machine_class(model=_Mode(in_kind), start_value=current)
    try:
        machine.send(event)
        target = machine.current_state_value
    except TransitionNotAllowed:  # also what a failed guard (cash / in kind) raises
        raise TransitionRefused(f"cannot {event.replace('_', ' ')} a request that is {current}",
                                details={"state": current, "event": event}) from None
    return target


def allowed_events(machine_class: type[StateMachine], current: str, *, in_kind: bool) -> list[str]:
    return list(_allowed_events(machine_class, current, in_kind))


@functools.cache
def _allowed_events(machine_class: type[StateMachine], current: str, in_kind: bool) -> tuple[str, ...]:
    machine = machine_class(model=_Mode(in_kind), start_value=current)
    return tuple(event.id for event in machine.enabled_events())


def states(machine_class: type[StateMachine]) -> list[str]:
    return [state.id for state in machine_class.states]


def final_states(machine_class: type[StateMachine]) -> set[str]:
    return {state.id for state in machine_class.states if state.final}


def lifecycle_mermaid(machine_class: type[StateMachine]) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {machine_class.initial_state.id}"]
    for state in machine_class.states:
        for transition in state.transitions:
            lines.append(f"    {transition.source.id} --> {transition.target.id}: {transition.event}")
        if state.final:
            lines.append(f"    {state.id} --> [*]")
    return "\n".join(lines)
