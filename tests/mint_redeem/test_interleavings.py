"""Random interleavings of market-maker API calls, operations actions and task runs never break a
ledger invariant, never leave a token without a share behind it, and keep every request's row
equal to its ledger stream. Refusals are allowed (that is the point); crashes are not."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from config.api import DomainError
from custody import calendar
from custody import services as custody_services
from custody.models import Fill
from ledger import integrity, selectors
from ledger.errors import LedgerError
from mint_redeem import services
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, allowed_events
from mint_redeem.models import MintRequest, Redemption

from .conftest import SignedClient

MONDAY_OPEN = calendar.next_market_open(datetime.fromisoformat("2026-11-21T12:00:00+00:00"))
CHAINS = ["ethereum", "solana"]


def build_machine(market, mm, operations, approver):
    api = SignedClient(mm)

    class PrimaryMarket(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.mints: list[int] = []
            self.redemptions: list[int] = []

        def attempt(self, fn):
            try:
                fn()
            except (DomainError, LedgerError):
                pass  # a refusal: it must have changed nothing, which the invariants check

        @rule(chain=st.sampled_from(CHAINS), funding=st.sampled_from(["cash", "in_kind"]),
              quantity=st.sampled_from(["1", "2.5", "300", "0.000000001"]))
        def api_create_mint(self, chain, funding, quantity):
            response = api.post("/api/v1/mints", {"product": "AAPLx", "chain": chain, "quantity": quantity,
                                                  "wallet": mm.wallets[chain].pk, "funding": funding})
            assert response.status_code in (201, 400, 403, 409, 422), response.content
            if response.status_code == 201:
                self.mints.append(response.json()["id"])

        @precondition(lambda self: self.mints)
        @rule(data=st.data())
        def api_cancel_mint(self, data):
            mint_id = data.draw(st.sampled_from(self.mints))
            response = api.post(f"/api/v1/mints/{mint_id}/cancel", {"reason": "random"})
            assert response.status_code in (200, 409), response.content

        @precondition(lambda self: self.mints)
        @rule(data=st.data(), action=st.sampled_from(["fund", "approve", "receive_shares", "fail", "confirm"]))
        def operations_act_on_mint(self, data, action):
            mint = MintRequest.objects.get(pk=data.draw(st.sampled_from(self.mints)))
            calls = {
                "fund": lambda: services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents or 1,
                                                          reference="W", user=operations),
                "approve": lambda: services.request_approve(request=mint, user=approver),
                "receive_shares": lambda: services.mint_shares_receive(mint=mint, custodian_confirmation="C",
                                                                       user=operations),
                "fail": lambda: services.mint_fail(mint=mint, actor="user:ops", reason="random"),
                "confirm": lambda: services.mint_confirm_on_chain(mint=mint, tx_hash="0xabc", actor="task:chain"),
            }
            self.attempt(calls[action])

        @rule()
        def tasks_run(self):
            for mint_id in self.mints:
                self.attempt(lambda m=mint_id: services.mint_advance(mint=MintRequest(pk=m), actor="task:t",
                                                                     now=MONDAY_OPEN))
            for redemption_id in self.redemptions:
                self.attempt(lambda r=redemption_id: services.redemption_advance(
                    redemption=Redemption(pk=r), actor="task:t", now=MONDAY_OPEN))

        @rule()
        def settlement_day_arrives(self):
            for day in sorted({f.settlement_date for f in Fill.objects.filter(status=Fill.Status.PENDING)}):
                custody_services.fills_settle_due(today=day, actor="task:settle")

        @rule(chain=st.sampled_from(CHAINS), payout=st.sampled_from(["cash", "in_kind"]),
              quantity=st.sampled_from(["1", "2.5"]))
        def api_create_redemption(self, chain, payout, quantity):
            response = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": chain, "quantity": quantity,
                                                        "wallet": mm.wallets[chain].pk, "payout": payout})
            assert response.status_code in (201, 400, 403, 409, 422), response.content
            if response.status_code == 201:
                self.redemptions.append(response.json()["id"])

        @precondition(lambda self: self.redemptions)
        @rule(data=st.data(), action=st.sampled_from(["tokens", "burn", "deliver", "pay", "cancel"]))
        def act_on_redemption(self, data, action):
            redemption = Redemption.objects.get(pk=data.draw(st.sampled_from(self.redemptions)))
            calls = {
                "tokens": lambda: services.redemption_tokens_receive(redemption=redemption, tx_hash="0x1",
                                                                     actor="task:watcher"),
                "burn": lambda: services.redemption_confirm_burn(redemption=redemption, tx_hash="0x2",
                                                                 actor="task:chain"),
                "deliver": lambda: services.redemption_shares_deliver(redemption=redemption,
                                                                      custodian_confirmation="C", user=operations),
                "pay": lambda: services.redemption_payout_record(redemption=redemption, bank_reference="B",
                                                                 user=operations),
                "cancel": lambda: services.redemption_cancel(redemption=redemption, actor="mm", reason="r"),
            }
            self.attempt(calls[action])

        @precondition(lambda self: self.mints or self.redemptions)
        @rule(data=st.data())
        def someone_takes_a_valid_next_step(self, data):
            """Pick a request and one of the steps its lifecycle allows now, as its owner would."""
            kind = data.draw(st.sampled_from([k for k, ids in (("mint", self.mints), ("redemption", self.redemptions))
                                              if ids]))
            if kind == "mint":
                request = MintRequest.objects.get(pk=data.draw(st.sampled_from(self.mints)))
                steps = {
                    "fund": lambda: services.mint_cash_record(mint=request, amount_cents=request.cash_due_cents,
                                                              reference="W", user=operations),
                    "receive_shares": lambda: services.mint_shares_receive(mint=request, custodian_confirmation="C",
                                                                           user=operations),
                    "confirm_mint": lambda: services.mint_confirm_on_chain(mint=request, tx_hash="0xabc",
                                                                           actor="task:chain"),
                }
                machine = MintLifecycle
            else:
                request = Redemption.objects.get(pk=data.draw(st.sampled_from(self.redemptions)))
                steps = {
                    "receive_tokens": lambda: services.redemption_tokens_receive(redemption=request, tx_hash="0x1",
                                                                                 actor="task:watcher"),
                    "confirm_burn": lambda: services.redemption_confirm_burn(redemption=request, tx_hash="0x2",
                                                                             actor="task:chain"),
                    "deliver_shares": lambda: services.redemption_shares_deliver(
                        redemption=request, custodian_confirmation="C", user=operations),
                    "pay_out": lambda: services.redemption_payout_record(redemption=request, bank_reference="B",
                                                                         user=operations),
                }
                machine = RedemptionLifecycle
            if request.needs_approval and request.approved_by_id is None:
                self.attempt(lambda: services.request_approve(request=request, user=approver))
            possible = [e for e in allowed_events(machine, request.state, in_kind=request.in_kind) if e in steps]
            if possible:
                self.attempt(steps[data.draw(st.sampled_from(possible))])
            self.tasks_run()
            self.settlement_day_arrives()
            self.tasks_run()

        @invariant()
        def every_token_is_backed(self):
            reserves = __import__("custody.reserves", fromlist=["product_reserves"]).product_reserves(
                product=market.product)
            assert reserves.coverage_ratio is None or reserves.coverage_ratio >= 1

        @invariant()
        def rows_follow_their_streams(self):
            for model in (MintRequest, Redemption):
                for request in model.objects.all():
                    events = selectors.read_stream(stream=request.stream)
                    assert request.version == events[-1].version
                    last_state = next(e.data["to_state"] for e in reversed(events) if "to_state" in e.data) \
                        if any("to_state" in e.data for e in events) else "requested"
                    assert request.state == last_state

        def teardown(self):
            assert integrity.verify(check_projections=False) == []

    return PrimaryMarket


@pytest.mark.slow
def test_random_interleavings_keep_the_ledger_sound(market, mm, operations, approver):
    machine = build_machine(market, mm, operations, approver)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=15, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
