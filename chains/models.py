"""What chains keeps in the database: the next nonce of each signer, and what the watcher has seen
of redemptions (with the block hash it saw each in, so a reorg is noticed). Never keys."""

from __future__ import annotations

from django.db import models


class SignerNonce(models.Model):
    """The next nonce of one signer on one chain. Assigned under SELECT ... FOR UPDATE (chains.nonces),
    so concurrent workers never share one and a restart carries on where the last process stopped."""

    chain = models.CharField(max_length=16)
    address = models.CharField(max_length=42, help_text="checksummed signer address")
    next_nonce = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="chains_signer_nonce_one_per_signer"),
            models.CheckConstraint(condition=models.Q(next_nonce__gte=0), name="chains_signer_nonce_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.address} on {self.chain}: next {self.next_nonce}"


class RedeemedEventSeen(models.Model):
    """A `Redeemed` log as the watcher saw it, identified with the block hash it was in. `seen` until
    the confirmation depth is reached, then `confirmed` (only then may it move a request); `withdrawn`
    if its block stopped being canonical first. A transaction re-mined in another block after a reorg
    is a new row (another block hash)."""

    class Status(models.TextChoices):
        SEEN = "seen"
        CONFIRMED = "confirmed"
        WITHDRAWN = "withdrawn"

    chain = models.CharField(max_length=16)
    token = models.CharField(max_length=64)
    tx_hash = models.CharField(max_length=128)
    log_index = models.IntegerField()
    block_number = models.BigIntegerField()
    block_hash = models.CharField(max_length=128, help_text="EVM: the block's hash; Solana: the transaction's signature")
    holder = models.CharField(max_length=64)
    amount_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    ref = models.CharField(max_length=402, help_text="bytes32 reference (EVM) or the memo's bytes (Solana), 0x-hex")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SEEN, db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True,
                                      help_text="when the confirmed event was handed on (chains.observers), once")
    seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "block_hash", "log_index"], name="chains_redeemed_once_per_log"),
        ]
        indexes = [models.Index(fields=["chain", "token", "status"])]

    def __str__(self) -> str:
        return f"Redeemed {self.amount_base_units} ref {self.ref[:10]} on {self.chain} ({self.status})"


class WatchCursor(models.Model):
    """Blocks below `next_block` are done for this token: every event in them is confirmed or withdrawn."""

    chain = models.CharField(max_length=16)
    token = models.CharField(max_length=64)
    next_block = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain", "token"], name="chains_watch_cursor_one_per_token")]

    def __str__(self) -> str:
        return f"{self.token} on {self.chain} from block {self.next_block}"
