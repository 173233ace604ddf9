import uuid

import pytest

from ledger.events import EventData, event_type


@event_type("test.moved", version=1)
class Moved(EventData):
    note: str = ""


@event_type("test.noted", version=1)
class Noted(EventData):
    text: str


@pytest.fixture
def tag() -> str:
    """A unique suffix so tests never share streams or accounts."""
    return uuid.uuid4().hex[:10]
