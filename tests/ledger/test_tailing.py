"""Writers on many streams while a reader tails the log: positions are gapless, in commit order,
and the reader never skips an event."""

import threading
import time

from django.db import connection

from ledger import selectors
from ledger.postings import Line
from ledger.services import NewEvent, append


def test_tailing_reader_sees_every_event_in_order_while_writers_run(committed, tag):
    writers, per_writer = 6, 40
    start_position = selectors.head().position
    stop = threading.Event()
    seen: list[int] = []
    seen_recorded_at = []
    problems: list[str] = []

    def writer(index):
        try:
            for i in range(per_writer):
                append(events=[NewEvent(stream=f"w{index}-{tag}-{i}", type="test.moved", data={},
                                        postings=[Line(f"t/{tag}/src{index}", "USD", -1),
                                                  Line(f"t/{tag}/hot", "USD", 1)])],
                       expected={f"w{index}-{tag}-{i}": 0}, actor=f"user:{index}")
        finally:
            connection.close()

    def reader():
        last = start_position
        try:
            while True:
                done = stop.is_set()
                batch = selectors.read_log(after_position=last, limit=50)
                for event in batch:
                    if event.position != last + 1:
                        problems.append(f"after {last} the reader saw {event.position}")
                    last = event.position
                    seen.append(event.position)
                    seen_recorded_at.append(event.recorded_at)
                if done and not batch:
                    return
                if not batch:
                    time.sleep(0.001)
        finally:
            connection.close()

    reader_thread = threading.Thread(target=reader)
    reader_thread.start()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reader_thread.join()

    assert problems == []
    assert seen == list(range(start_position + 1, start_position + 1 + writers * per_writer))
    assert seen_recorded_at == sorted(seen_recorded_at)  # commit order and time order agree
    assert selectors.balance(account=f"t/{tag}/hot", asset="USD").posted == writers * per_writer
