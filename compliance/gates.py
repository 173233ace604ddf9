"""The one question mint_redeem asks before a mint or redeem: may this participant transact now, to or
from this wallet, for this notional? The answer is None or a ComplianceRefusal with a stable code.

Daily caps count what requests reserved with `assert_may_transact_and_reserve` (idempotent per
reference, checked under the participant's row lock); rejected or cancelled requests are released with
`compliance.services.notional_usage_release`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from compliance.models import AmlRisk, KycStatus, NotionalUsage, Participant, Wallet, WalletStatus
from config.api import DomainError

REFUSAL_CODES = (
    "kyc_not_approved", "kyc_expired", "participant_blocked", "wallet_not_verified", "wallet_frozen",
    "wallet_not_owned", "wallet_sanctioned", "below_minimum", "above_request_limit", "above_daily_limit",
)


class ComplianceRefusal(DomainError):
    code = "compliance_refused"
    http_status = 403


# Caps are per trading day, and US equities trade on New York's clock: a request at 21:00 New York time
# counts against that New York day, not the UTC day that has already begun.
TRADING_TZ = ZoneInfo("America/New_York")


def trading_day(at: datetime | None = None) -> date:
    return timezone.localtime(at or timezone.now(), TRADING_TZ).date()


def _refuse(code: str, message: str, *, http_status: int = 403, details=None):
    raise ComplianceRefusal(message, code=code, http_status=http_status, details=details)


# The gate runs on every request and again before every chain action, so its reads are written by
# hand: one statement for the participant and the wallet, one for the day's usage.
_PARTICIPANT_FIELDS = ("id", "sanctions_hold", "aml_risk", "kyc_status", "kyc_expires_on", "min_request_cents",
                       "max_request_cents", "daily_limit_cents")
_WALLET_FIELDS = ("id", "participant_id", "sanctions_hold", "frozen", "status")
_GATE_SQL = """
    SELECT p.id, p.sanctions_hold, p.aml_risk, p.kyc_status, p.kyc_expires_on, p.min_request_cents,
           p.max_request_cents, p.daily_limit_cents,
           w.id, w.participant_id, w.sanctions_hold, w.frozen, w.status
    FROM compliance_participant p LEFT JOIN compliance_wallet w ON w.id = %s
    WHERE p.id = %s"""
_USAGE_SQL = """
    SELECT (SELECT COALESCE(SUM(notional_cents), 0) FROM compliance_notionalusage
            WHERE participant_id = %s AND usage_date = %s AND released_at IS NULL)"""
# Count the day's reservations and reserve ours in one statement. The row is inserted only when the
# request will pass (the same test as `_check` makes on the count), so a refusal leaves nothing behind;
# the count does not include the row this statement inserts (one snapshot per statement).
_RESERVE_SQL = """
    WITH prior AS (
        SELECT COALESCE(SUM(notional_cents), 0) AS used FROM compliance_notionalusage
        WHERE participant_id = %(participant)s AND usage_date = %(day)s AND released_at IS NULL
    ), existing AS (
        SELECT participant_id, notional_cents, released_at FROM compliance_notionalusage
        WHERE reference = %(reference)s
    ), reserved AS (
        INSERT INTO compliance_notionalusage (participant_id, reference, notional_cents, usage_date, released_at,
                                              created_at)
        SELECT %(participant)s, %(reference)s, %(cents)s, %(day)s, NULL, %(now)s
        WHERE NOT EXISTS (SELECT 1 FROM existing)
          AND %(limit)s > 0 AND (SELECT used FROM prior) + %(cents)s <= %(limit)s
        ON CONFLICT (reference) DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id FROM reserved), (SELECT used FROM prior), e.participant_id, e.notional_cents, e.released_at
    FROM (SELECT 1) AS one LEFT JOIN existing e ON true"""


@dataclass(frozen=True)
class _ParticipantStanding:
    id: int
    sanctions_hold: bool
    aml_risk: str
    kyc_status: str
    kyc_expires_on: date | None
    min_request_cents: int
    max_request_cents: int
    daily_limit_cents: int


@dataclass(frozen=True)
class _WalletStanding:
    id: int
    participant_id: int
    sanctions_hold: bool
    frozen: bool
    status: str


assert tuple(f.name for f in fields(_ParticipantStanding)) == _PARTICIPANT_FIELDS
assert tuple(f.name for f in fields(_WalletStanding)) == _WALLET_FIELDS


def _read(cursor, participant_id: int, wallet: Wallet | None, *,
          lock: bool) -> tuple[_ParticipantStanding, _WalletStanding | None]:
    """Fresh rows, so a decision taken a moment ago (freeze, hold) is seen."""
    cursor.execute(_GATE_SQL + (" FOR UPDATE OF p" if lock else ""), [wallet.pk if wallet else None, participant_id])
    row = cursor.fetchone()
    if row is None:
        raise Participant.DoesNotExist(f"participant {participant_id} does not exist")
    n = len(_PARTICIPANT_FIELDS)
    p = _ParticipantStanding(*row[:n])
    if wallet is None:
        return p, None
    # A wallet that vanished reads as another participant's: refused as not owned.
    w = _WalletStanding(*row[n:]) if row[n] is not None else None
    return p, w


def assert_may_transact(*, participant: Participant, wallet: Wallet | None, notional_cents: int,
                        today: date | None = None) -> None:
    """Raise ComplianceRefusal unless the participant may transact `notional_cents` with `wallet`.
    `wallet` may be None for operations that involve no wallet of the participant (e.g. an in-kind
    delivery)."""
    today = today or trading_day()
    with connection.cursor() as cursor:
        p, w = _read(cursor, participant.pk, wallet, lock=False)

        def used_today() -> int:
            cursor.execute(_USAGE_SQL, [p.id, today])
            return cursor.fetchone()[0]

        _check(p, w, wallet is not None, notional_cents, today, used_today=used_today)


def assert_may_transact_and_reserve(*, participant: Participant, wallet: Wallet | None, notional_cents: int,
                                    reference: str, today: date | None = None) -> NotionalUsage:
    """The gate and the daily-cap reservation in one step, under the participant's row lock: what a new
    request calls in the transaction that creates it. Concurrent requests of one participant queue on
    the lock, so they cannot both squeeze under the cap. Idempotent per `reference`. A refusal writes
    nothing, so it needs no savepoint of its own inside the caller's transaction."""
    today = today or trading_day()
    outer = contextlib.nullcontext() if connection.in_atomic_block else transaction.atomic()
    with outer, connection.cursor() as cursor:
        p, w = _read(cursor, participant.pk, wallet, lock=True)
        now = timezone.now()
        outcome = {}

        def reserve_and_count() -> int:
            # Runs after the lock is held, so it counts every reservation committed before ours.
            cursor.execute(_RESERVE_SQL, {"participant": p.id, "day": today, "reference": reference,
                                          "cents": notional_cents, "now": now, "limit": p.daily_limit_cents})
            reserved_id, used, existing_participant, existing_cents, existing_released = cursor.fetchone()
            if existing_participant is not None:
                if existing_participant != p.id or existing_cents != notional_cents:
                    raise DomainError(f"usage reference {reference!r} was recorded with other values",
                                      code="usage_reference_conflict", http_status=409)
                if existing_released is None:
                    used -= existing_cents  # our own reservation, made by an earlier run of this request
            outcome["id"] = reserved_id
            return used

        _check(p, w, wallet is not None, notional_cents, today, used_today=reserve_and_count)
        if outcome["id"] is None:  # reserved by an earlier run of this request
            return NotionalUsage.objects.get(reference=reference)
        return NotionalUsage(id=outcome["id"], participant_id=p.id, reference=reference,
                             notional_cents=notional_cents, usage_date=today, released_at=None, created_at=now)


def assert_may_continue(*, participant: Participant, wallet: Wallet | None, today: date | None = None) -> None:
    """The gate before a request's chain action: the participant's status, sanctions and the wallet only.
    The request's amount was checked, and charged against the day's cap, when it was made; checking it
    again against the cap of a later day would fail a mint whose shares are already bought because of
    unrelated requests."""
    today = today or trading_day()
    with connection.cursor() as cursor:
        p, w = _read(cursor, participant.pk, wallet, lock=False)
    _check_standing(p, w, wallet is not None, today)


def _check(p: _ParticipantStanding, w: _WalletStanding | None, wallet_given: bool, notional_cents: int, today: date, *,
           used_today) -> None:
    _check_standing(p, w, wallet_given, today)
    if isinstance(notional_cents, bool) or not isinstance(notional_cents, int) or notional_cents <= 0:
        raise DomainError("notional must be a positive integer of cents", code="invalid_notional", retryable=False)
    if notional_cents < p.min_request_cents:
        _refuse("below_minimum", f"the minimum request is {p.min_request_cents} cents", http_status=422,
                details={"min_request_cents": p.min_request_cents})
    if p.max_request_cents == 0 or notional_cents > p.max_request_cents:
        _refuse("above_request_limit", f"the per-request cap is {p.max_request_cents} cents", http_status=422,
                details={"max_request_cents": p.max_request_cents})
    used = used_today()
    if p.daily_limit_cents == 0 or used + notional_cents > p.daily_limit_cents:
        _refuse("above_daily_limit", "this request would exceed the daily notional cap", http_status=422,
                details={"used_cents": used, "daily_limit_cents": p.daily_limit_cents})


def _check_standing(p: _ParticipantStanding, w: _WalletStanding | None, wallet_given: bool, today: date) -> None:
    """Status, sanctions and the wallet: what must still hold at every step of a request."""
    if p.sanctions_hold or p.aml_risk == AmlRisk.PROHIBITED or p.kyc_status == KycStatus.SUSPENDED:
        _refuse("participant_blocked", "this participant is blocked pending a compliance review")
    if p.kyc_status == KycStatus.EXPIRED or (
        p.kyc_status == KycStatus.APPROVED and (p.kyc_expires_on is None or p.kyc_expires_on <= today)
    ):
        # Checked against the date, not only the status, so expiry blocks even before the nightly task runs.
        _refuse("kyc_expired", "this participant's KYC has expired")
    if p.kyc_status != KycStatus.APPROVED:
        _refuse("kyc_not_approved", "this participant's KYC is not approved")
    if wallet_given:
        if w is None or w.participant_id != p.id:
            _refuse("wallet_not_owned", "this wallet is not registered to this participant")
        if w.sanctions_hold:
            _refuse("wallet_sanctioned", "this wallet is blocked by sanctions screening")
        if w.frozen:
            _refuse("wallet_frozen", "this wallet is frozen")
        if w.status != WalletStatus.VERIFIED:
            _refuse("wallet_not_verified", "this wallet has not proven control of its address")
