"""Ledger tables. Events and postings are append-only (database triggers refuse UPDATE, DELETE and
TRUNCATE); everything else here is a projection kept in the same transaction as the append, and
`manage.py ledger rebuild --check` proves it equal to a replay of the log.

Amounts are exact integers in each asset's base units, stored as numeric(78,0) so that an
ERC-20's uint256 supply fits.
"""

from django.db import models

AMOUNT = {"max_digits": 78, "decimal_places": 0}


class Stream(models.Model):
    stream_id = models.TextField(primary_key=True)
    version = models.IntegerField()

    class Meta:
        db_table = "ledger_stream"

    def __str__(self) -> str:
        return f"{self.stream_id}@{self.version}"


class Event(models.Model):
    position = models.BigIntegerField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    stream_id = models.TextField()
    stream_version = models.IntegerField()
    event_type = models.TextField()
    schema_version = models.SmallIntegerField()
    data = models.JSONField()
    metadata = models.JSONField()
    recorded_at = models.DateTimeField()
    hash = models.BinaryField()

    class Meta:
        db_table = "ledger_event"
        constraints = [
            models.UniqueConstraint(fields=["stream_id", "stream_version"], name="ledger_event_stream_version_uniq")
        ]
        indexes = [
            models.Index(fields=["recorded_at", "position"], name="ledger_event_recorded_pos_idx"),
            models.Index(fields=["event_type"], name="ledger_event_type_idx"),
        ]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"#{self.position} {self.event_type} {self.stream_id}@{self.stream_version}"


class Account(models.Model):
    path = models.TextField(unique=True)
    non_negative = models.BooleanField(default=False)

    class Meta:
        db_table = "ledger_account"

    def __str__(self) -> str:
        return self.path


class Posting(models.Model):
    """One line of an event's postings, with the account's running totals after it (for as-of)."""

    # ledger_append is the only writer of postings and `ledger verify` checks every reference, so no
    # deferred foreign-key checks run at commit, while the chain lock is held. The unique
    # (position, line_no) and as-of (account, asset, position) indexes cover the lookups.
    event = models.ForeignKey(Event, on_delete=models.PROTECT, db_column="position", related_name="postings",
                              db_index=False, db_constraint=False)
    line_no = models.SmallIntegerField()
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="postings", db_index=False,
                                db_constraint=False)
    asset = models.TextField()
    posted_delta = models.DecimalField(**AMOUNT)
    pending_in_delta = models.DecimalField(**AMOUNT)
    pending_out_delta = models.DecimalField(**AMOUNT)
    pending_id = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL means "not part of a pending transfer"
    posted_after = models.DecimalField(**AMOUNT)
    pending_in_after = models.DecimalField(**AMOUNT)
    pending_out_after = models.DecimalField(**AMOUNT)

    class Meta:
        db_table = "ledger_posting"
        constraints = [models.UniqueConstraint(fields=["event", "line_no"], name="ledger_posting_line_uniq")]
        ordering = ["event_id", "line_no"]

    def __str__(self) -> str:
        return f"#{self.event_id}.{self.line_no} {self.account_id} {self.asset} {self.posted_delta}"


class Balance(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="balances", db_index=False)
    asset = models.TextField()
    posted = models.DecimalField(**AMOUNT, default=0)
    pending_in = models.DecimalField(**AMOUNT, default=0)
    pending_out = models.DecimalField(**AMOUNT, default=0)

    class Meta:
        db_table = "ledger_balance"
        constraints = [models.UniqueConstraint(fields=["account", "asset"], name="ledger_balance_account_asset_uniq")]

    def __str__(self) -> str:
        return f"{self.account} {self.asset}: {self.posted}"


class PendingTransfer(models.Model):
    """A two-phase transfer: reserved when opened, later posted (in full or in part) or voided, once."""

    class State(models.TextChoices):
        PENDING = "pending"
        POSTED = "posted"
        VOIDED = "voided"

    pending_id = models.TextField(primary_key=True)
    debit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    credit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    asset = models.TextField()
    amount = models.DecimalField(**AMOUNT)
    state = models.TextField(choices=State.choices, default=State.PENDING)
    posted_amount = models.DecimalField(**AMOUNT, null=True)
    opened_event_id = models.UUIDField()
    resolved_event_id = models.UUIDField(null=True)

    class Meta:
        db_table = "ledger_pending"

    def __str__(self) -> str:
        return f"{self.pending_id} ({self.state})"


class Head(models.Model):
    """The chain head: last position and its hash. One row; written only under the append lock."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    position = models.BigIntegerField()
    hash = models.BinaryField()

    class Meta:
        db_table = "ledger_head"

    def __str__(self) -> str:
        return f"head #{self.position}"
