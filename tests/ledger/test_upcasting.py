"""Old event versions are upcast to the current schema when read.

(Read models of other apps are rows those apps write in the append's own transaction; the ledger's own
projections (balances, pending transfers, stream versions, head) are rebuilt and checked by
tests/ledger/test_verify_rebuild.py.)"""

import pytest

from ledger import events
from ledger.errors import InvalidEventData


class RenamedV1(events.EventData):
    name: str


@events.event_type("test.renamed", version=2)
class RenamedV2(events.EventData):
    given_name: str
    family_name: str


@events.upcaster("test.renamed", from_version=1)
def _split_name(data: dict) -> dict:
    given, _, family = data["name"].partition(" ")
    return {"given_name": given, "family_name": family}


def test_new_events_use_the_latest_schema_and_old_ones_are_upcast():
    assert events.latest_version("test.renamed") == 2
    with pytest.raises(InvalidEventData):
        events.validate("test.renamed", {"name": "Ada Lovelace"})  # v1 shape is no longer accepted
    assert events.validate("test.renamed", {"given_name": "Ada", "family_name": "Lovelace"})[0] == 2
    decoded = events.decode("test.renamed", 1, {"name": "Ada Lovelace"})
    assert (decoded.given_name, decoded.family_name) == ("Ada", "Lovelace")
