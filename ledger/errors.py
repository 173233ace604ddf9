"""Errors the ledger raises. Each carries a stable machine-readable code."""

from __future__ import annotations


class LedgerError(Exception):
    code = "ledger_error"


class StreamVersionConflict(LedgerError):
    """Another writer appended to the stream first. Reload and retry the command."""

    code = "stream_version_conflict"


class UnbalancedPostings(LedgerError):
    code = "unbalanced_postings"


class BalanceConstraintViolation(LedgerError):
    code = "balance_constraint_violation"


class PendingTransferNotOpen(LedgerError):
    code = "pending_transfer_not_open"


class PendingTransferExists(LedgerError):
    code = "pending_transfer_exists"


class UnknownEventType(LedgerError):
    code = "unknown_event_type"


class InvalidEventData(LedgerError):
    code = "invalid_event_data"


class LogImmutable(LedgerError):
    code = "ledger_append_only"


class NotYetSealed(LedgerError):
    """The append was journalled and its transaction has not committed: its position and hash are
    assigned by the sealer after the commit (ledger/sql/seal.sql)."""

    code = "ledger_not_yet_sealed"


SQLSTATE_ERRORS: dict[str, type[LedgerError]] = {
    "LG001": StreamVersionConflict,
    "LG002": UnbalancedPostings,
    "LG003": BalanceConstraintViolation,
    "LG004": PendingTransferNotOpen,
    "LG005": PendingTransferExists,
    "LG006": InvalidEventData,
    "LG010": LogImmutable,
}
