"""Compliance read/write models. Every change to them goes through compliance.services, which also
appends a ledger event naming who decided and why (streams participant-<id>, wallet-<id>, case-<id>,
sanctions-list-<id>, api-key-<id>)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from compliance.crypto import EncryptedTextField


class KycStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"
    EXPIRED = "expired", "Expired"


class AmlRisk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    PROHIBITED = "prohibited", "Prohibited"


class Chain(models.TextChoices):
    ETHEREUM = "ethereum", "Ethereum"
    ARBITRUM = "arbitrum", "Arbitrum"
    BASE = "base", "Base"
    SOLANA = "solana", "Solana"


EVM_CHAINS = frozenset({Chain.ETHEREUM, Chain.ARBITRUM, Chain.BASE})


class Participant(models.Model):
    """A market maker / authorized participant: the only kind of customer that mints and redeems."""

    legal_name = models.CharField(max_length=300)
    lei = models.CharField("LEI", max_length=20, unique=True, help_text="ISO 17442 Legal Entity Identifier")
    jurisdiction = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 country code")
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=40, blank=True)

    kyc_status = models.CharField(max_length=16, choices=KycStatus.choices, default=KycStatus.PENDING)
    kyc_approved_on = models.DateField(null=True, blank=True)
    kyc_expires_on = models.DateField(null=True, blank=True)
    kyc_review_on = models.DateField(null=True, blank=True, help_text="next periodic review")
    kyc_submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="+")
    aml_risk = models.CharField(max_length=16, choices=AmlRisk.choices, default=AmlRisk.MEDIUM)
    # Set by a sanctions hit; only a compliance officer's case decision lifts it.
    sanctions_hold = models.BooleanField(default=False)

    min_request_cents = models.BigIntegerField(default=0)
    max_request_cents = models.BigIntegerField(default=0, help_text="0 = no mints until a cap is set")
    daily_limit_cents = models.BigIntegerField(default=0, help_text="0 = no mints until a cap is set")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("decide_kyc", "Can approve, reject or suspend KYC and set AML risk and limits")]
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(min_request_cents__gte=0) & Q(max_request_cents__gte=0)
                                   & Q(daily_limit_cents__gte=0), name="participant_limits_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.legal_name} ({self.lei})"


class MarketMakerUser(models.Model):
    """Links a Django user (an API user of a market maker) to exactly one participant."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="market_maker")
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="users")

    def __str__(self) -> str:
        return f"{self.user} @ {self.participant_id}"


class WalletStatus(models.TextChoices):
    PENDING = "pending", "Pending proof of control"
    VERIFIED = "verified", "Verified"


class Wallet(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="wallets")
    chain = models.CharField(max_length=16, choices=Chain.choices)
    address = models.CharField(max_length=64, help_text="EIP-55 checksummed (EVM) or base58 (Solana)")
    label = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=WalletStatus.choices, default=WalletStatus.PENDING)
    verified_at = models.DateTimeField(null=True, blank=True)
    frozen = models.BooleanField(default=False)
    frozen_reason = models.TextField(blank=True)
    sanctions_hold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("freeze_wallet", "Can freeze and unfreeze wallets")]
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["chain", "address"], name="wallet_unique_chain_address")]

    def __str__(self) -> str:
        return f"{self.chain}:{self.address}"

    @property
    def verified(self) -> bool:
        return self.status == WalletStatus.VERIFIED


class WalletChallenge(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="challenges")
    message = models.TextField()
    nonce = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"challenge {self.nonce} for wallet {self.wallet_id}"


class NotionalUsage(models.Model):
    """Notional counted against a participant's daily cap; one row per caller reference."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="usage")
    reference = models.CharField(max_length=200, unique=True)
    notional_cents = models.BigIntegerField()
    usage_date = models.DateField()
    released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["participant", "usage_date"])]
        constraints = [models.CheckConstraint(condition=Q(notional_cents__gt=0), name="usage_positive")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.notional_cents} cents on {self.usage_date}"


# --- Sanctions ------------------------------------------------------------------------------------

class SanctionsList(models.Model):
    """An imported SDN list. One is current (screening reads it). A list much smaller than the current
    one is held instead, until a second compliance officer approves it (services.sanctions_list_import)."""

    source = models.CharField(max_length=500, help_text="file path or URL imported from")
    publish_date = models.DateField(null=True, blank=True)
    record_count = models.IntegerField(null=True, blank=True, help_text="as stated by the publisher")
    entry_count = models.IntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    is_current = models.BooleanField(default=False)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    imported_at = models.DateTimeField(auto_now_add=True)
    compared_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    help_text="the list that was current when this one was imported")
    held = models.BooleanField(default=False, help_text="much smaller than the current list: waits for a "
                                                        "second compliance officer")
    shrink_approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                           on_delete=models.PROTECT, related_name="+")
    shrink_approved_at = models.DateTimeField(null=True, blank=True)
    shrink_approval_reason = models.TextField(blank=True)

    class Meta:
        permissions = [("import_sanctions", "Can import sanctions lists")]
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["is_current"], condition=Q(is_current=True),
                                               name="one_current_sanctions_list"),
                       models.CheckConstraint(condition=~(Q(held=True) & Q(is_current=True)),
                                              name="held_sanctions_list_not_current")]

    def __str__(self) -> str:
        return f"SDN list {self.publish_date} ({self.entry_count} entries)"


class SanctionsEntry(models.Model):
    sanctions_list = models.ForeignKey(SanctionsList, on_delete=models.CASCADE, related_name="entries")
    uid = models.IntegerField()
    name = models.CharField(max_length=500)
    sdn_type = models.CharField(max_length=40, blank=True)
    programs = models.JSONField(default=list)
    remarks = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sanctions_list", "uid"], name="sanctions_entry_uid")]
        verbose_name_plural = "sanctions entries"

    def __str__(self) -> str:
        return f"{self.uid} {self.name}"


class SanctionsName(models.Model):
    """A primary name or alias of an entry, normalised for fuzzy screening."""

    entry = models.ForeignKey(SanctionsEntry, on_delete=models.CASCADE, related_name="names")
    name = models.CharField(max_length=500)
    normalized = models.CharField(max_length=500)
    is_primary = models.BooleanField(default=False)
    weak = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class SanctionsAddress(models.Model):
    entry = models.ForeignKey(SanctionsEntry, on_delete=models.CASCADE, related_name="addresses")
    currency = models.CharField(max_length=16, help_text='e.g. XBT, ETH, SOL (from "Digital Currency Address - X")')
    address = models.CharField(max_length=200)
    # EVM addresses are case-insensitive (EIP-55 case is a checksum); others compare exactly.
    normalized = models.CharField(max_length=200, db_index=True)

    class Meta:
        verbose_name_plural = "sanctions addresses"

    def __str__(self) -> str:
        return f"{self.currency} {self.address}"


class ScreeningSubject(models.TextChoices):
    PARTICIPANT = "participant", "Participant name"
    WALLET = "wallet", "Wallet address"


class ScreeningResult(models.Model):
    subject_type = models.CharField(max_length=16, choices=ScreeningSubject.choices)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="screenings")
    wallet = models.ForeignKey(Wallet, null=True, blank=True, on_delete=models.PROTECT, related_name="screenings")
    sanctions_list = models.ForeignKey(SanctionsList, on_delete=models.PROTECT, related_name="screenings")
    screened_value = models.CharField(max_length=500)
    hit = models.BooleanField()
    best_score = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    threshold = models.DecimalField(max_digits=5, decimal_places=2)
    matches = models.JSONField(default=list)
    trigger = models.CharField(max_length=40, help_text="what caused this screening")
    screened_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"screening {self.id} of {self.screened_value!r}: {'hit' if self.hit else 'clear'}"


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLEARED = "cleared", "Cleared (false positive)"
    CONFIRMED = "confirmed", "Confirmed (true match)"


class ComplianceCase(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="cases")
    wallet = models.ForeignKey(Wallet, null=True, blank=True, on_delete=models.PROTECT, related_name="cases")
    screening = models.ForeignKey(ScreeningResult, on_delete=models.PROTECT, related_name="cases")
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    summary = models.TextField()
    opened_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        permissions = [("decide_case", "Can clear or confirm compliance cases")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Case {self.id} ({self.status})"


class ComplianceAlert(models.Model):
    """Something compliance officers must see (KYC expired, review due, sanctions hit)."""

    kind = models.CharField(max_length=40)
    participant = models.ForeignKey(Participant, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="alerts")
    message = models.TextField()
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"


# --- API credentials ------------------------------------------------------------------------------

class ApiScope(models.TextChoices):
    READ = "read", "Read"
    TRADE = "trade", "Read and trade"


class SignatureAlgorithm(models.TextChoices):
    HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256"
    ED25519 = "ed25519", "Ed25519"


class ApiKey(models.Model):
    """An API credential. The bearer secret is stored only as a SHA-256 hash (it is 256 random bits, so
    a slow hash adds nothing); an HMAC signing secret is stored encrypted because the server must
    recompute signatures with it; an Ed25519 signing key is stored as its public half only."""

    key_id = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_keys")
    participant = models.ForeignKey(Participant, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="api_keys", help_text="empty for auditor keys")
    scope = models.CharField(max_length=8, choices=ApiScope.choices, default=ApiScope.READ)
    secret_hash = models.CharField(max_length=64)
    signature_alg = models.CharField(max_length=16, choices=SignatureAlgorithm.choices)
    hmac_key_encrypted = EncryptedTextField(blank=True)
    ed25519_public_key = models.BinaryField(max_length=32, null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return self.key_id


class SignatureNonce(models.Model):
    """Nonces of accepted signed requests, kept past the 5-minute window so a replay is refused."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE)
    nonce = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "nonce"], name="signature_nonce_unique")]

    def __str__(self) -> str:
        return self.nonce


class IdempotencyRecord(models.Model):
    """The final answer to an idempotent request, under its key. Written in the request's own transaction,
    so a record anyone else can see always holds its response (compliance.idempotency)."""

    scope = models.CharField(max_length=64, help_text='"participant:<id>" or "user:<id>"')
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    response_status = models.IntegerField(null=True)  # null only inside the claiming transaction
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"


class ReferenceChange(models.Model):
    """A change to reference data (brokers, securities, products, product terms, custody accounts) that
    one person proposes, with a reason, and another applies. `before` is the values the proposer saw:
    if the row moved on since, the proposal is stale and cannot be applied."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        REJECTED = "rejected"
        STALE = "stale"

    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.PROTECT, related_name="+")
    object_id = models.BigIntegerField()
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(help_text="field -> proposed value, as text")
    before = models.JSONField(help_text="field -> value when proposed, as text")
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decision_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_referencechange", "Can apply a change to reference data proposed by another "
                                                   "person (four eyes)")]

    def __str__(self) -> str:
        return f"change {self.pk} to {self.object_repr} ({self.status})"

    @property
    def stream(self) -> str:
        return f"reference-{self.content_type.app_label}.{self.content_type.model}-{self.object_id}"
