"""Random command sequences keep every ledger invariant (hypothesis stateful testing).

A plain-Python model of balances and pending transfers runs beside the real ledger. Commands that
should be refused (overdrafts of a non-negative account, resolving twice, stale versions,
unbalanced postings) must be refused and change nothing; after each step, the ledger's balances,
as-of answers and stream versions equal the model's; at the end `verify` finds nothing wrong.
"""

import uuid

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

from ledger import integrity, selectors
from ledger.accounts import register_account_policy
from ledger.errors import (
    BalanceConstraintViolation,
    PendingTransferNotOpen,
    StreamVersionConflict,
    UnbalancedPostings,
)
from ledger.postings import Line, PendingOpen, PendingPost, PendingVoid
from ledger.services import NewEvent, append

ACCOUNTS = ["ext", "v1", "v2", "v3"]  # ext may go negative; v* are non-negative vaults
ASSETS = ["USD", "shares:AAPL"]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tag = uuid.uuid4().hex[:10]
        register_account_policy(f"pv{self.tag}/", non_negative=True)
        self.balances = {}  # (account, asset) -> [posted, pending_in, pending_out]
        self.pending = {}  # id -> (debit, credit, asset, amount, state)
        self.version = 0
        self.history = []  # (position, snapshot of balances)

    def path(self, name):
        return f"pv{self.tag}/{name}" if name != "ext" else f"ext/{self.tag}"

    def figures(self, account, asset):
        return self.balances.setdefault((account, asset), [0, 0, 0])

    def available(self, account, asset):
        posted, _pin, pout = self.figures(account, asset)
        return posted - pout

    def _append(self, *postings, expected=None):
        stream = f"m-{self.tag}"
        result = append(events=[NewEvent(stream=stream, type="test.moved", data={}, postings=list(postings))],
                        expected={stream: self.version if expected is None else expected}, actor="system")
        self.version += 1
        return result.events[0].position

    def _snapshot(self, position):
        self.history.append((position, {k: tuple(v) for k, v in self.balances.items()}))

    @rule(src=st.sampled_from(ACCOUNTS), dst=st.sampled_from(ACCOUNTS), asset=st.sampled_from(ASSETS),
          amount=st.integers(min_value=1, max_value=10**20))
    def transfer(self, src, dst, asset, amount):
        if src == dst:
            return
        if src != "ext" and self.available(src, asset) < amount:
            with pytest.raises(BalanceConstraintViolation):
                self._append(Line(self.path(src), asset, -amount), Line(self.path(dst), asset, amount))
            return
        position = self._append(Line(self.path(src), asset, -amount), Line(self.path(dst), asset, amount))
        self.figures(src, asset)[0] -= amount
        self.figures(dst, asset)[0] += amount
        self._snapshot(position)

    @rule(src=st.sampled_from(ACCOUNTS), dst=st.sampled_from(ACCOUNTS), asset=st.sampled_from(ASSETS),
          amount=st.integers(min_value=1, max_value=10**6))
    def open_pending(self, src, dst, asset, amount):
        if src == dst:
            return
        pending_id = f"pd-{self.tag}-{len(self.pending)}"
        posting = PendingOpen(pending_id, self.path(src), self.path(dst), asset, amount)
        if src != "ext" and self.available(src, asset) < amount:
            with pytest.raises(BalanceConstraintViolation):
                self._append(posting)
            return
        position = self._append(posting)
        self.pending[pending_id] = (src, dst, asset, amount, "pending")
        self.figures(src, asset)[2] += amount
        self.figures(dst, asset)[1] += amount
        self._snapshot(position)

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), void=st.booleans())
    def resolve(self, data, void):
        pending_id = data.draw(st.sampled_from(sorted(self.pending)))
        src, dst, asset, amount, state = self.pending[pending_id]
        posted = 0 if void else data.draw(st.integers(min_value=1, max_value=amount))
        posting = PendingVoid(pending_id) if void else PendingPost(pending_id, posted)
        if state != "pending":
            with pytest.raises(PendingTransferNotOpen):
                self._append(posting)
            return
        position = self._append(posting)
        self.pending[pending_id] = (src, dst, asset, amount, "voided" if void else "posted")
        self.figures(src, asset)[0] -= posted
        self.figures(src, asset)[2] -= amount
        self.figures(dst, asset)[0] += posted
        self.figures(dst, asset)[1] -= amount
        self._snapshot(position)

    @rule(offset=st.sampled_from([-1, 1, 5]))
    def stale_version_is_refused(self, offset):
        if self.version + offset < 0:
            return
        with pytest.raises(StreamVersionConflict):
            self._append(Line(self.path("ext"), "USD", -1), Line(self.path("v1"), "USD", 1),
                         expected=self.version + offset)

    @rule(amount=st.integers(min_value=1, max_value=1000))
    def unbalanced_is_refused(self, amount):
        with pytest.raises(UnbalancedPostings):
            self._append(Line(self.path("ext"), "USD", -amount), Line(self.path("v1"), "USD", amount + 1))

    @invariant()
    def balances_match_the_model(self):
        for (account, asset), expected in self.balances.items():
            got = selectors.balance(account=self.path(account), asset=asset)
            assert (got.posted, got.pending_in, got.pending_out) == tuple(expected)
            assert account == "ext" or got.available >= 0
        assert selectors.stream_version(stream=f"m-{self.tag}") == self.version

    def teardown(self):
        for position, snapshot in self.history[-5:]:
            for (account, asset), expected in snapshot.items():
                got = selectors.balance_as_of(account=self.path(account), asset=asset, position=position)
                assert (got.posted, got.pending_in, got.pending_out) == expected


@pytest.mark.slow
def test_random_command_sequences_keep_every_invariant(db):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]),
    )
    assert integrity.verify() == []
