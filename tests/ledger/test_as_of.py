import random
from collections import defaultdict
from datetime import timedelta

from ledger import selectors
from ledger.postings import Line, PendingOpen, PendingPost
from ledger.services import NewEvent, append


def replay_balances(up_to_position, tag):
    """A naive replay: sum every posting of the log up to the position."""
    from ledger.models import Posting

    totals = defaultdict(lambda: [0, 0, 0])
    for p in Posting.objects.filter(event_id__lte=up_to_position, account__path__startswith=f"t/{tag}/"
                                    ).select_related("account"):
        row = totals[(p.account.path, p.asset)]
        row[0] += int(p.posted_delta)
        row[1] += int(p.pending_in_delta)
        row[2] += int(p.pending_out_delta)
    return totals


def test_as_of_equals_a_replay_at_every_position(db, tag):
    rng = random.Random(7)
    accounts = [f"t/{tag}/{name}" for name in "abcd"]
    positions = []
    open_ids = []
    for i in range(60):
        choice = rng.random()
        if choice < 0.2:
            src, dst = rng.sample(accounts, 2)
            open_ids.append(f"pa-{tag}-{i}")
            postings = [PendingOpen(open_ids[-1], src, dst, "USD", rng.randint(1, 50))]
        elif choice < 0.3 and open_ids:
            postings = [PendingPost(open_ids.pop(0))]
        else:
            src, dst = rng.sample(accounts, 2)
            amount = rng.randint(1, 100)
            postings = [Line(src, "USD", -amount), Line(dst, "USD", amount)]
        positions.append(append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={}, postings=postings)],
                                actor="system").events[0].position)
    for position in positions:
        replayed = replay_balances(position, tag)
        for account in accounts:
            got = selectors.balance_as_of(account=account, asset="USD", position=position)
            assert (got.posted, got.pending_in, got.pending_out) == tuple(replayed[(account, "USD")])


def test_as_of_an_instant(db, tag):
    first = append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                                    postings=[Line(f"t/{tag}/a", "USD", -5), Line(f"t/{tag}/b", "USD", 5)])],
                   actor="system").events[0]
    second = append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                                     postings=[Line(f"t/{tag}/a", "USD", -7), Line(f"t/{tag}/b", "USD", 7)])],
                    actor="system").events[0]
    b = f"t/{tag}/b"
    assert selectors.balance_as_of(account=b, asset="USD", instant=first.recorded_at - timedelta(seconds=1)).posted in (0,)
    assert selectors.balance_as_of(account=b, asset="USD", instant=first.recorded_at).posted == 5
    assert selectors.balance_as_of(account=b, asset="USD", instant=second.recorded_at).posted == 12
    assert selectors.balance_as_of(account=b, asset="USD", position=first.position - 1).posted == 0
