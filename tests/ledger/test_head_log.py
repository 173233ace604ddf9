"""The ledger head is published outside the database: after each append's transaction commits, one
log record (logger `ledger.head`, INFO) carries the new head's position and hash. A database rewritten
later would have to reproduce every head already in the logs."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import transaction

from config.logging import JsonFormatter
from ledger import selectors
from ledger.postings import Line
from ledger.services import NewEvent, append


def moved(tag, amount=1):
    return NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                    postings=[Line(f"t/{tag}/a", "USD", -amount), Line(f"t/{tag}/b", "USD", amount)])


def heads_logged(head_log) -> list[tuple[int, str]]:
    return [(record.position, record.hash) for record in head_log.records if record.name == "ledger.head"]


@pytest.fixture
def head_log(caplog):
    caplog.set_level(logging.INFO, logger="ledger.head")
    return caplog


def test_an_append_on_its_own_logs_the_new_head_once_committed(committed, tag, head_log):
    first = append(events=[moved(tag)], actor="system")
    second = append(events=[moved(tag), moved(tag, 2)], actor="system")
    assert heads_logged(head_log) == [(first.last_position, first.events[-1].hash.hex()),
                                    (second.last_position, second.events[-1].hash.hex())]
    head = selectors.head()
    assert heads_logged(head_log)[-1] == (head.position, head.hash.hex())
    assert {record.levelno for record in head_log.records if record.name == "ledger.head"} == {logging.INFO}


def test_inside_a_transaction_the_head_is_logged_after_the_commit(committed, tag, head_log):
    with transaction.atomic():
        result = append(events=[moved(tag)], actor="system")
        assert heads_logged(head_log) == []
    assert heads_logged(head_log) == [(result.last_position, result.events[-1].hash.hex())]


def test_a_rolled_back_append_logs_nothing(committed, tag, head_log):
    with pytest.raises(RuntimeError), transaction.atomic():
        append(events=[moved(tag)], actor="system")
        raise RuntimeError("the command fails after its append")
    assert heads_logged(head_log) == []


def test_the_json_log_line_carries_position_and_hash(committed, tag, head_log):
    result = append(events=[moved(tag)], actor="system")
    record = next(record for record in head_log.records if record.name == "ledger.head")
    line = json.loads(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record))
    assert line["name"] == "ledger.head" and line["levelname"] == "INFO"
    assert line["position"] == result.last_position
    assert line["hash"] == result.events[-1].hash.hex() and len(line["hash"]) == 64
