"""Custody read/write models: what backs the tokens and where it is.

Quantities of shares are nano-shares (int), prices and multipliers exact Decimals. The ledger is the
truth for balances (custody/<custodian>/<TICKER>, in_transit/<broker>/<TICKER>, tokens/<chain>/<SYMBOL>);
the rows here describe the things those accounts are about, and the state of orders, fills,
statements and reconciliation breaks, each change of which is also recorded as a ledger event.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

TICKER_VALIDATOR = RegexValidator(r"^[A-Z][A-Z0-9.]{0,9}$", "a ticker is upper-case letters, digits and dots")
ISIN_VALIDATOR = RegexValidator(r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$", "an ISIN is 12 characters: country, 9 alphanumerics, check digit")
CUSIP_VALIDATOR = RegexValidator(r"^[A-Z0-9]{8}[0-9]$", "a CUSIP is 9 characters")
MIC_VALIDATOR = RegexValidator(r"^[A-Z0-9]{4}$", "a MIC is 4 upper-case characters (ISO 10383)")
CODE_VALIDATOR = RegexValidator(r"^[a-z0-9_]{1,32}$", "a code is lower-case letters, digits and underscores")
SYMBOL_VALIDATOR = RegexValidator(r"^[A-Za-z0-9]{1,16}$", "a product symbol is letters and digits")

NANO_PER_SHARE = 10**9


class Chain(models.TextChoices):
    ETHEREUM = "ethereum"
    ARBITRUM = "arbitrum"
    BASE = "base"
    SOLANA = "solana"


class Side(models.TextChoices):
    BUY = "buy"
    SELL = "sell"


class Security(models.Model):
    ticker = models.CharField(max_length=10, unique=True, validators=[TICKER_VALIDATOR])
    isin = models.CharField(max_length=12, unique=True, validators=[ISIN_VALIDATOR])
    cusip = models.CharField(max_length=9, unique=True, validators=[CUSIP_VALIDATOR])
    exchange_mic = models.CharField(max_length=4, validators=[MIC_VALIDATOR])
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["ticker"]
        verbose_name_plural = "securities"

    def __str__(self) -> str:
        return f"{self.ticker} ({self.isin})"

    @property
    def share_asset(self) -> str:
        return f"shares:{self.ticker}"


class TokenProduct(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"

    symbol = models.CharField(max_length=16, unique=True, validators=[SYMBOL_VALIDATOR])
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="products")
    # Shares per token. Starts at 1; corporate actions (splits, dividends reinvested) change it.
    multiplier = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal(1),
                                     validators=[MinValueValidator(Decimal("0.000000001"))])
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    # A reconciliation break larger than this (nano-shares) pauses minting until resolved.
    break_tolerance_nano = models.BigIntegerField(default=0, validators=[MinValueValidator(0)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            # A share backs exactly one product's tokens; two products on one security would count it twice.
            models.UniqueConstraint(fields=["security"], name="custody_product_one_per_security"),
            models.CheckConstraint(condition=models.Q(multiplier__gt=0), name="custody_product_multiplier_positive"),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def minting_paused_by_break(self) -> bool:
        """True while an unresolved break pauses this product: a custody break above tolerance on its
        security, or a supply break on any of its chains (see `blocking_break_exists`)."""
        return (ReconciliationBreak.blocking(security_id=self.security_id).exists()
                or SupplyBreak.blocking(product_id=self.pk).exists())

    @property
    def minting_paused(self) -> bool:
        return self.status == self.Status.PAUSED or self.minting_paused_by_break

    def tokens_account(self, chain: str) -> str:
        return f"tokens/{chain}/{self.symbol}"

    def token_asset(self, chain: str) -> str:
        return f"tok:{self.symbol}:{chain}"


class ChainDeployment(models.Model):
    product = models.ForeignKey(TokenProduct, on_delete=models.PROTECT, related_name="deployments")
    chain = models.CharField(max_length=16, choices=Chain.choices)
    decimals = models.PositiveSmallIntegerField(validators=[MinValueValidator(0)])
    address = models.CharField(max_length=64, blank=True, default="")
    # The block (EVM) or slot (Solana) the token was deployed in: a watcher's first scan starts there.
    deployed_block = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["product__symbol", "chain"]
        constraints = [
            models.UniqueConstraint(fields=["product", "chain"], name="custody_deployment_one_per_chain"),
            models.CheckConstraint(condition=models.Q(decimals__lte=36), name="custody_deployment_decimals_max"),
        ]

    def __str__(self) -> str:
        return f"{self.product.symbol}@{self.chain}"


class Custodian(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[CODE_VALIDATOR])
    name = models.CharField(max_length=200)
    bic = models.CharField(max_length=11, blank=True, default="")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class CustodyAccount(models.Model):
    """A safekeeping account at a custodian. The ledger keeps positions per custodian
    (custody/<custodian>/<TICKER>); statements arrive per account and are summed per custodian."""

    custodian = models.ForeignKey(Custodian, on_delete=models.PROTECT, related_name="accounts")
    account_number = models.CharField(max_length=35, unique=True)
    name = models.CharField(max_length=200, blank=True, default="")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["custodian__code", "account_number"]

    def __str__(self) -> str:
        return f"{self.custodian.code}:{self.account_number}"


class Broker(models.Model):
    class Kind(models.TextChoices):
        SIMULATED = "simulated"
        ALPACA = "alpaca"

    code = models.CharField(max_length=32, unique=True, validators=[CODE_VALIDATOR])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SIMULATED)
    settlement_days = models.PositiveSmallIntegerField(default=1)
    # Where this broker delivers bought shares (and takes sold ones from) at settlement.
    custodian = models.ForeignKey(Custodian, on_delete=models.PROTECT, related_name="brokers")
    # Simulated broker: fee in basis points of notional, a minimum fee, and the delay before an order fills.
    sim_fee_bps = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal(0))
    sim_min_fee_cents = models.BigIntegerField(default=0)
    sim_latency_ms = models.PositiveIntegerField(default=0)
    # Real broker: base URL override (empty = the vendor's default) and the prefix of the environment
    # variables holding credentials (<PREFIX>_API_KEY, <PREFIX>_SECRET_KEY). Secrets never live in the DB.
    # Paper or live trading is not a row's choice: settings.BROKER_LIVE_TRADING (environment) decides.
    api_base_url = models.URLField(blank=True, default="", help_text="must be on settings.BROKER_API_BASE_URLS")
    credentials_env_prefix = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        super().clean()
        if self.api_base_url and not base_url_allowed(self.api_base_url):
            raise ValidationError({"api_base_url": "not on the allowlist of broker API base URLs "
                                                   "(settings.BROKER_API_BASE_URLS)"})


def base_url_allowed(url: str) -> bool:
    """Only an origin named in settings (HTTPS in production: settings refuse anything else there): a
    broker's credentials are never sent anywhere else."""
    from urllib.parse import urlsplit

    from django.conf import settings

    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return origin in {u.rstrip("/").lower() for u in settings.BROKER_API_BASE_URLS}


class SimulatedPrice(models.Model):
    """The reference price at which the simulated broker fills orders in a security."""

    broker = models.ForeignKey(Broker, on_delete=models.CASCADE, related_name="sim_prices")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="+")
    price = models.DecimalField(max_digits=20, decimal_places=6, validators=[MinValueValidator(Decimal("0.000001"))])
    liquidity_nano = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="at most this many nano-shares of one order fill; the rest expires at the close, as a DAY "
                  "order's does (empty: every order fills in full)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["broker", "security"], name="custody_simprice_uniq")]

    def __str__(self) -> str:
        return f"{self.broker.code} {self.security.ticker} @ {self.price}"


class SimulatedOrder(models.Model):
    """The simulated broker's own book (it plays an external system, so it keeps its own state)."""

    broker = models.ForeignKey(Broker, on_delete=models.CASCADE, related_name="+")
    broker_order_id = models.CharField(max_length=64, unique=True)
    client_order_id = models.CharField(max_length=64)
    ticker = models.CharField(max_length=10)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity_nano = models.BigIntegerField()
    price = models.DecimalField(max_digits=20, decimal_places=6)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=4)
    min_fee_cents = models.BigIntegerField()
    submitted_at = models.DateTimeField()
    fills_at = models.DateTimeField()
    fillable_nano = models.BigIntegerField(null=True, blank=True, help_text="the liquidity when it was placed")
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["broker", "client_order_id"], name="custody_simorder_client_uniq")]

    def __str__(self) -> str:
        return self.broker_order_id


class BrokerOrder(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        ACCEPTED = "accepted"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELLED = "cancelled"
        REJECTED = "rejected"

    TERMINAL = (Status.FILLED, Status.CANCELLED, Status.REJECTED)

    broker = models.ForeignKey(Broker, on_delete=models.PROTECT, related_name="orders")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity_nano = models.BigIntegerField(validators=[MinValueValidator(1)])
    client_order_id = models.CharField(max_length=64, unique=True)
    broker_order_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    filled_quantity_nano = models.BigIntegerField(default=0)
    reject_reason = models.CharField(max_length=500, blank=True, default="")
    created_by = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity_nano__gt=0), name="custody_order_qty_positive")]

    def __str__(self) -> str:
        return f"order {self.id} {self.side} {self.security.ticker}"

    @property
    def stream(self) -> str:
        return f"order-{self.id}"


class Fill(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SETTLED = "settled"

    order = models.ForeignKey(BrokerOrder, on_delete=models.PROTECT, related_name="fills")
    broker_fill_id = models.CharField(max_length=100)
    quantity_nano = models.BigIntegerField()
    # Execution prices can carry sub-penny digits (Alpaca reports up to 9); stored exactly.
    price = models.DecimalField(max_digits=24, decimal_places=10)
    gross_cents = models.BigIntegerField()
    fee_cents = models.BigIntegerField(default=0)
    executed_at = models.DateTimeField()
    trade_date = models.DateField()
    settlement_date = models.DateField(db_index=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "broker_fill_id"], name="custody_fill_once"),
            models.CheckConstraint(condition=models.Q(quantity_nano__gt=0), name="custody_fill_qty_positive"),
        ]

    def __str__(self) -> str:
        return f"fill {self.id} of order {self.order_id}"

    @property
    def pending_id(self) -> str:
        return f"fill-{self.id}"


class Statement(models.Model):
    class Format(models.TextChoices):
        SEMT002 = "semt002"
        CSV = "csv"

    account = models.ForeignKey(CustodyAccount, on_delete=models.PROTECT, related_name="statements")
    statement_ref = models.CharField(max_length=35)
    as_of = models.DateTimeField()
    format = models.CharField(max_length=8, choices=Format.choices)
    sha256 = models.CharField(max_length=64, unique=True)
    file_name = models.CharField(max_length=255, blank=True, default="")
    imported_by = models.CharField(max_length=64)
    imported_at = models.DateTimeField(auto_now_add=True)
    ledger_position = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-as_of", "-id"]
        constraints = [models.UniqueConstraint(fields=["account", "statement_ref"], name="custody_statement_ref_uniq")]
        indexes = [models.Index(fields=["account", "-as_of"], name="custody_stmt_acct_asof")]

    def __str__(self) -> str:
        return f"{self.account} {self.statement_ref} ({self.as_of:%Y-%m-%d})"


class StatementHolding(models.Model):
    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="holdings")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="+")
    quantity_nano = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["statement", "security"], name="custody_holding_uniq")]

    def __str__(self) -> str:
        return f"{self.security.ticker}: {self.quantity_nano}"


class ReconciliationRun(models.Model):
    started_at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=64)
    pairs_checked = models.IntegerField(default=0)
    breaks_opened = models.IntegerField(default=0)
    breaks_cleared = models.IntegerField(default=0)
    ledger_position = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reconciliation {self.id}"


class ReconciliationBreak(models.Model):
    """A difference between what the ledger expects at a custodian and what its statements report."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"  # by a person, with a reason
        CLEARED = "cleared"  # a later reconciliation found the figures agreeing again

    custodian = models.ForeignKey(Custodian, on_delete=models.PROTECT, related_name="breaks")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="breaks")
    statement_as_of = models.DateTimeField()
    expected_nano = models.BigIntegerField()
    reported_nano = models.BigIntegerField()
    difference_nano = models.BigIntegerField()  # reported - expected
    blocks_minting = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=64, blank=True, default="")
    resolution_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["status", "-detected_at"]
        constraints = [
            models.UniqueConstraint(fields=["custodian", "security"], condition=models.Q(status="open"),
                                    name="custody_break_one_open"),
        ]
        indexes = [models.Index(fields=["security", "status"], name="custody_break_sec_status")]

    def __str__(self) -> str:
        return f"break {self.custodian.code}/{self.security.ticker} {self.difference_nano:+d}"

    @property
    def stream(self) -> str:
        return f"break-{self.id}"

    @classmethod
    def blocking(cls, *, security_id) -> models.QuerySet:
        """Custody's half of "minting paused by a break": an open break above the product's tolerance on
        its security (the other half: `SupplyBreak.blocking`; both together: `blocking_break_exists`).
        `security_id` may be an OuterRef for a subquery. (The API's hot-path statement,
        mint_redeem.selectors._CONTEXT_SQL, writes the same condition by hand; a test holds them equal.)"""
        return cls.objects.filter(security_id=security_id, status=cls.Status.OPEN, blocks_minting=True)


class InKindTransfer(models.Model):
    """Shares moved into or out of custody by a custodian-confirmed free-of-payment transfer
    (in-kind mint or redemption). One row per custodian confirmation reference."""

    class Direction(models.TextChoices):
        RECEIVE = "receive"
        DELIVER = "deliver"

    direction = models.CharField(max_length=8, choices=Direction.choices)
    custodian = models.ForeignKey(Custodian, on_delete=models.PROTECT, related_name="in_kind_transfers")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="+")
    quantity_nano = models.BigIntegerField(validators=[MinValueValidator(1)])
    counterparty_account = models.CharField(max_length=200)
    reference = models.CharField(max_length=100, unique=True)
    custodian_confirmation = models.CharField(max_length=100)
    actor = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity_nano__gt=0), name="custody_inkind_qty_positive")]

    def __str__(self) -> str:
        return f"{self.direction} {self.security.ticker} {self.reference}"


def blocking_break_exists(*, security_id, product_id) -> models.Expression:
    """"Minting paused by a break" as one boolean expression, for annotations (`security_id` and
    `product_id` may be OuterRefs): a blocking custody break on the security or a supply break on the
    product. mint_redeem.selectors._CONTEXT_SQL writes the same by hand; a test holds them equal."""
    return models.Q(models.Exists(ReconciliationBreak.blocking(security_id=security_id))) | models.Q(
        models.Exists(SupplyBreak.blocking(product_id=product_id)))


class SupplyObservation(models.Model):
    """One reading of a token's total supply on a chain at a known block (slot), beside the ledger's
    tokens outstanding it was compared with. A projection of `custody.supply_observed`, written in the
    same transaction; (product, chain, stream_version) names its event on the stream
    `supply-<SYMBOL>-<chain>`, so `custody.selectors.supply_observed_as_of` finds the observation in
    force at any ledger position. Base units may exceed 2**63: NUMERIC(78, 0)."""

    product = models.ForeignKey(TokenProduct, on_delete=models.PROTECT, related_name="supply_observations")
    chain = models.CharField(max_length=16, choices=Chain.choices)
    stream_version = models.IntegerField()
    block = models.BigIntegerField(help_text="EVM block number or Solana slot the supply was read at")
    block_hash = models.CharField(max_length=100, blank=True, default="")
    supply_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    ledger_position = models.BigIntegerField(help_text="the ledger head the supply was compared at")
    ledger_outstanding_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    # Net amount of our own operations that had landed on chain by `block` but were not yet recorded
    # at `ledger_position` (mints +, burns -): in flight, not a break.
    in_flight_base_units = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    difference_base_units = models.DecimalField(max_digits=78, decimal_places=0,
                                                help_text="supply - ledger outstanding")
    observed_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["product", "chain", "stream_version"],
                                               name="custody_supply_observation_once")]
        indexes = [models.Index(fields=["product", "chain", "-stream_version"], name="custody_supply_obs_latest")]

    def __str__(self) -> str:
        return f"{self.product.symbol}@{self.chain} supply {self.supply_base_units} at {self.block}"

    @property
    def stream(self) -> str:
        return supply_stream(self.product.symbol, self.chain)

    @property
    def unexplained_base_units(self) -> int:
        return int(self.difference_base_units - self.in_flight_base_units)


def supply_stream(symbol: str, chain: str) -> str:
    return f"supply-{symbol}-{chain}"


class SupplyBreak(models.Model):
    """A token's supply on a chain that the ledger cannot account for: tokens minted or burned outside
    our operations (a leaked minter key, a contract bug) or a ledger that missed a confirmation.
    Always pauses minting of the product, on every chain, until it clears (a later observation agrees)
    or a person resolves it with a reason."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"
        CLEARED = "cleared"

    product = models.ForeignKey(TokenProduct, on_delete=models.PROTECT, related_name="supply_breaks")
    chain = models.CharField(max_length=16, choices=Chain.choices)
    block = models.BigIntegerField()
    supply_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    ledger_outstanding_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    in_flight_base_units = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    # supply - ledger outstanding - in flight: what nothing we know of explains.
    unexplained_base_units = models.DecimalField(max_digits=78, decimal_places=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=64, blank=True, default="")
    resolution_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["status", "-detected_at"]
        constraints = [
            models.UniqueConstraint(fields=["product", "chain"], condition=models.Q(status="open"),
                                    name="custody_supply_break_one_open"),
        ]
        indexes = [models.Index(fields=["product", "status"], name="custody_supply_break_status")]

    def __str__(self) -> str:
        return f"supply break {self.product.symbol}@{self.chain} {self.unexplained_base_units:+}"

    @property
    def stream(self) -> str:
        return f"supply-break-{self.id}"

    @classmethod
    def blocking(cls, *, product_id) -> models.QuerySet:
        """Supply breaks that pause minting of the product: every open one (no tolerance: a token the
        ledger cannot account for has no share known to back it). `product_id` may be an OuterRef."""
        return cls.objects.filter(product_id=product_id, status=cls.Status.OPEN)
