import pytest

from ledger import selectors
from ledger.errors import (
    BalanceConstraintViolation,
    InvalidEventData,
    PendingTransferExists,
    PendingTransferNotOpen,
)
from ledger.postings import Line, PendingOpen, PendingPost, PendingVoid
from ledger.services import NewEvent, append

from .test_append import run_concurrently


def ev(tag, *postings):
    return NewEvent(stream=f"p-{tag}", type="test.moved", data={}, postings=list(postings))


def bal(account):
    return selectors.balance(account=account, asset="shares:AAPL")


def open_fill(tag, amount=100):
    append(events=[ev(tag, PendingOpen(f"fill-{tag}", f"market/{tag}", f"in_transit/{tag}", "shares:AAPL", amount))],
           actor="system")


def test_pending_reserves_then_posts_in_full(db, tag):
    open_fill(tag)
    assert bal(f"in_transit/{tag}").pending_in == 100 and bal(f"in_transit/{tag}").posted == 0
    assert bal(f"market/{tag}").pending_out == 100
    append(events=[ev(tag, PendingPost(f"fill-{tag}"))], actor="system")
    assert bal(f"in_transit/{tag}") == selectors.BalanceFigures(posted=100, pending_in=0, pending_out=0)
    assert bal(f"market/{tag}") == selectors.BalanceFigures(posted=-100, pending_in=0, pending_out=0)


def test_partial_post_releases_the_rest(db, tag):
    open_fill(tag)
    append(events=[ev(tag, PendingPost(f"fill-{tag}", amount=60))], actor="system")
    assert bal(f"in_transit/{tag}") == selectors.BalanceFigures(posted=60, pending_in=0, pending_out=0)


def test_void_releases_everything(db, tag):
    open_fill(tag)
    append(events=[ev(tag, PendingVoid(f"fill-{tag}"))], actor="system")
    assert bal(f"in_transit/{tag}") == selectors.BalanceFigures()
    assert bal(f"market/{tag}") == selectors.BalanceFigures()


@pytest.mark.parametrize("first,second", [
    (PendingPost, PendingPost), (PendingPost, PendingVoid), (PendingVoid, PendingPost), (PendingVoid, PendingVoid)])
def test_a_pending_transfer_is_resolved_at_most_once(db, tag, first, second):
    open_fill(tag)
    append(events=[ev(tag, first(f"fill-{tag}"))], actor="system")
    before = bal(f"in_transit/{tag}")
    with pytest.raises(PendingTransferNotOpen):
        append(events=[ev(tag, second(f"fill-{tag}"))], actor="system")
    assert bal(f"in_transit/{tag}") == before


def test_resolving_twice_in_one_event_and_unknown_ids_are_refused(db, tag):
    open_fill(tag)
    with pytest.raises(PendingTransferNotOpen):
        append(events=[ev(tag, PendingPost(f"fill-{tag}", 10), PendingVoid(f"fill-{tag}"))], actor="system")
    with pytest.raises(PendingTransferNotOpen):
        append(events=[ev(tag, PendingPost(f"nope-{tag}"))], actor="system")
    with pytest.raises(InvalidEventData):
        append(events=[ev(tag, PendingPost(f"fill-{tag}", amount=101))], actor="system")
    with pytest.raises(PendingTransferExists):
        open_fill(tag)
    assert bal(f"in_transit/{tag}").pending_in == 100


def test_pending_out_counts_against_a_non_negative_account(db, tag):
    from ledger.accounts import register_account_policy

    register_account_policy(f"nn{tag}/", non_negative=True)
    append(events=[ev(tag, Line(f"ext/{tag}", "shares:AAPL", -10), Line(f"nn{tag}/a", "shares:AAPL", 10))],
           actor="system")
    append(events=[ev(tag, PendingOpen(f"out-{tag}", f"nn{tag}/a", f"ext/{tag}", "shares:AAPL", 8))], actor="system")
    with pytest.raises(BalanceConstraintViolation):
        append(events=[ev(tag, Line(f"nn{tag}/a", "shares:AAPL", -3), Line(f"ext/{tag}", "shares:AAPL", 3))],
               actor="system")
    with pytest.raises(BalanceConstraintViolation):
        append(events=[ev(tag, PendingOpen(f"out2-{tag}", f"nn{tag}/a", f"ext/{tag}", "shares:AAPL", 3))],
               actor="system")


def test_concurrent_post_and_void_exactly_one_wins(committed, tag):
    open_fill(tag)

    def attempt(index):
        resolution = PendingPost(f"fill-{tag}") if index % 2 else PendingVoid(f"fill-{tag}")
        return append(events=[ev(tag, resolution)], actor="system")

    results, errors = run_concurrently(6, attempt)
    assert len(results) == 1
    assert all(isinstance(e, PendingTransferNotOpen) for e in errors) and len(errors) == 5
    figures = bal(f"in_transit/{tag}")
    assert figures.pending_in == 0 and figures.posted in (0, 100)
