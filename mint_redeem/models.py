"""Mint and redemption requests, the chain-operation outbox and webhooks.

A request row is the read model of its ledger stream (`mint-<id>`, `redemption-<id>`): services
change both in one transaction, and `version` is the stream version the row reflects, used as the
expected version of the next append (optimistic concurrency on top of the row lock).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from compliance.crypto import EncryptedTextField
from compliance.models import Participant, Wallet
from custody.models import Broker, Custodian, TokenProduct


class ProductTerms(models.Model):
    """How the issuer runs the primary market of one product (set by operations)."""

    product = models.OneToOneField(TokenProduct, on_delete=models.PROTECT, related_name="terms")
    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="+",
                               help_text="broker that buys and sells the shares of cash mints and redemptions")
    custodian = models.ForeignKey(Custodian, on_delete=models.PROTECT, related_name="+",
                                  help_text="custodian of in-kind deliveries")
    reference_price = models.DecimalField(max_digits=20, decimal_places=6,
                                          help_text="USD per share used to quote cash due and notional")
    cash_buffer_bps = models.PositiveIntegerField(default=200, help_text="extra cash asked for price moves")
    fee_bps = models.PositiveIntegerField(default=10, help_text="issuer fee on notional")
    approval_threshold_cents = models.BigIntegerField(
        default=10_000_000, help_text="mints and redemptions above this notional need a second person's approval")
    market_hours_only = models.BooleanField(
        default=True, help_text="place orders only in regular US market hours (off for brokers that trade 24/5)")
    redemption_addresses = models.JSONField(default=dict, blank=True,
                                            help_text='{"ethereum": "0x...", "solana": "..."}')

    class Meta:
        verbose_name_plural = "product terms"

    def __str__(self) -> str:
        return f"terms of {self.product}"


class _Request(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey(TokenProduct, on_delete=models.PROTECT, related_name="+")
    chain = models.CharField(max_length=16)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="+")
    quantity_nano = models.BigIntegerField(help_text="shares, in nano-shares")
    token_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    notional_cents = models.BigIntegerField()
    state = models.CharField(max_length=20, db_index=True)
    version = models.IntegerField(default=0)
    needs_approval = models.BooleanField(default=False)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    broker_order = models.ForeignKey("custody.BrokerOrder", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    reason = models.TextField(blank=True, default="", help_text="why it was rejected, cancelled or failed")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    created_by = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @property
    def in_kind(self) -> bool:
        raise NotImplementedError


class MintRequest(_Request):
    class Funding(models.TextChoices):
        CASH = "cash"
        IN_KIND = "in_kind"

    funding = models.CharField(max_length=8, choices=Funding.choices)
    cash_due_cents = models.BigIntegerField(default=0)
    cash_received_cents = models.BigIntegerField(default=0)
    funded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    cost_cents = models.BigIntegerField(null=True, blank=True, help_text="what the shares cost, fees included")
    fee_cents = models.BigIntegerField(default=0, help_text="the issuer's fee: quoted until the order is done, "
                                                            "then what was charged (pro rata to the shares bought)")

    class Meta:
        indexes = [models.Index(fields=["participant", "-id"], name="mint_participant_idx")]
        permissions = [("approve_mintrequest", "Can approve mints above the product's threshold (four eyes)")]

    def __str__(self) -> str:
        return f"mint #{self.pk} {self.product} {self.state}"

    @property
    def stream(self) -> str:
        return f"mint-{self.pk}"

    @property
    def in_kind(self) -> bool:
        return self.funding == self.Funding.IN_KIND


class Redemption(_Request):
    class Payout(models.TextChoices):
        CASH = "cash"
        IN_KIND = "in_kind"

    payout = models.CharField(max_length=8, choices=Payout.choices)
    deposit_tx = models.CharField(max_length=128, blank=True, default="",
                                  help_text="transaction that moved the tokens to the redemption address")
    proceeds_cents = models.BigIntegerField(null=True, blank=True)
    sold_quantity_nano = models.BigIntegerField(default=0, help_text="shares sold so far, over every sell order")
    order_attempts = models.PositiveIntegerField(default=0, help_text="sell orders placed so far")
    delivery_account = models.CharField(max_length=200, blank=True, default="",
                                        help_text="where in-kind shares go (the participant's custody account)")

    class Meta:
        indexes = [models.Index(fields=["participant", "-id"], name="redemption_participant_idx")]
        permissions = [("approve_redemption", "Can approve redemptions above the product's threshold (four eyes)")]

    def __str__(self) -> str:
        return f"redemption #{self.pk} {self.product} {self.state}"

    @property
    def stream(self) -> str:
        return f"redemption-{self.pk}"

    @property
    def in_kind(self) -> bool:
        return self.payout == self.Payout.IN_KIND


class ChainOperation(models.Model):
    """The outbox of chain actions. Written in the same transaction as the transition that needs it;
    executed by a Celery task that persists the signed transaction before broadcasting it."""

    class Kind(models.TextChoices):
        MINT = "mint"
        BURN = "burn"
        MULTIPLIER = "multiplier"  # a corporate action: the product's multiplier, shown on chain
        RESERVE = "reserve"  # a reserve-feed update from an attestation (mint_redeem.reserve_feed)

    class Status(models.TextChoices):
        PENDING = "pending"
        SIGNED = "signed"
        BROADCAST = "broadcast"
        CONFIRMED = "confirmed"
        FAILED = "failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    chain = models.CharField(max_length=16)
    product = models.ForeignKey(TokenProduct, on_delete=models.PROTECT, related_name="+")
    address = models.CharField(max_length=64, help_text="recipient of a mint, holder burned from")
    amount_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    # Reserve-feed updates only: the shares the outstanding tokens need (nano); amount is the reserve.
    supply_base_units = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    request_reference = models.CharField(max_length=64, unique=True,
                                         help_text="mint-<id>, redemption-<id> or multiplier-<product id>-<n>")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    signed_tx = models.TextField(blank=True, default="")
    tx_hash = models.CharField(max_length=128, blank=True, default="")
    # Earlier transactions of this operation at the same nonce, replaced by `tx_hash` (a fee bump) or
    # given up for the chain's own record of the reference: whichever of them confirms is this
    # operation's (only one can: they share a nonce, or the contract refuses the reference twice).
    other_tx_hashes = models.JSONField(default=list, blank=True)
    last_valid_block_height = models.BigIntegerField(
        null=True, blank=True, help_text="Solana: the signed transaction can land up to this block height, never after")
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_base_units} {self.product} on {self.chain} ({self.status})"


class WebhookEndpoint(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    # The HMAC key must be usable to sign, so it is stored encrypted (compliance.crypto), not hashed; it
    # is shown to the participant once and never rendered in the admin or logs.
    secret_encrypted = EncryptedTextField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.url} ({self.participant})"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event_id = models.CharField(max_length=64, help_text="the ledger event this announces")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.IntegerField(default=0)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while an attempt is under way (webhooks.delivery_attempt), so no other worker sends it meanwhile.
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_once_per_event")]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.endpoint.url} ({self.status})"




class DepositCase(models.Model):
    """A confirmed on-chain redemption (a `Redeemed` event) that matches no request waiting for it: an
    unknown reference, another product or chain, another amount, or a request no longer `requested`.
    Its tokens stay in the redemption vault, never burned, until operations settle the case."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    chain = models.CharField(max_length=16)
    token = models.CharField(max_length=64)
    holder = models.CharField(max_length=64)
    amount_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    reference = models.CharField(max_length=200, blank=True, default="", help_text="the reference as text, if ASCII")
    ref_hex = models.CharField(max_length=402)
    tx_hash = models.CharField(max_length=128)
    log_index = models.IntegerField()
    block_number = models.BigIntegerField()
    redemption = models.ForeignKey(Redemption, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    problem = models.TextField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True)
    resolution = models.TextField(blank=True, default="")
    resolved_by = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["status", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["chain", "tx_hash", "log_index"],
                                               name="mint_redeem_deposit_case_once_per_log")]

    def __str__(self) -> str:
        return f"deposit {self.amount_base_units} ref {self.reference or self.ref_hex[:10]} on {self.chain}: {self.problem[:60]}"
