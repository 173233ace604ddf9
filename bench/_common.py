"""Helpers shared by the benchmarks. BenchAggregate: the `eventsourcing` aggregate the ledger benchmark saves
(in a module of its own so its topic resolves in every process)."""

from eventsourcing.domain import Aggregate


class BenchAggregate(Aggregate):
    def __init__(self, n: int):
        self.n = n
