"""What an event can do to balances: plain posted lines and two-phase (pending) transfers.

Amounts are integers in the asset's base units. An account's balance is the sum of its amounts:
a transfer of q from A to B is Line(A, -q) + Line(B, +q). Every event's lines sum to zero per asset.
Pending transfers follow TigerBeetle's two-phase model: opening reserves the amount (pending_out on
the debit account, pending_in on the credit account); posting moves all or part of it to posted and
releases the rest; voiding releases all of it. Each pending transfer is resolved at most once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    account: str
    asset: str
    amount: int


@dataclass(frozen=True)
class PendingOpen:
    pending_id: str
    debit: str
    credit: str
    asset: str
    amount: int


@dataclass(frozen=True)
class PendingPost:
    """Post a pending transfer; `amount` None posts it in full, less posts part and releases the rest."""

    pending_id: str
    amount: int | None = None


@dataclass(frozen=True)
class PendingVoid:
    pending_id: str


Posting = Line | PendingOpen | PendingPost | PendingVoid
