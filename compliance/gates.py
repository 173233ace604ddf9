"""The one question mint_redeem asks before a mint or redeem: may this participant transact now, to or
from this wallet, for this notional? The answer is None or a ComplianceRefusal with a stable code.

Daily caps count what requests reserved with `assert_may_transact_and_reserve` (idempotent per
reference, checked under the participant's row lock); rejected or cancelled requests are released with
`compliance.services.notional_usage_release`.
"""

from __future__ import annotations

from datetime import date

from django.db import transaction
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


def _refuse(code: str, message: str, *, http_status: int = 403, details=None):
    raise ComplianceRefusal(message, code=code, http_status=http_status, details=details)


def assert_may_transact(*, participant: Participant, wallet: Wallet | None, notional_cents: int,
                        today: date | None = None) -> None:
    """Raise ComplianceRefusal unless the participant may transact `notional_cents` with `wallet`.
    Reads fresh rows, so a decision taken a moment ago (freeze, hold) is seen. `wallet` may be None for
    operations that involve no wallet of the participant (e.g. an in-kind delivery)."""
    from compliance.services import _used_today

    today = today or timezone.localdate()
    p = Participant.objects.get(pk=participant.pk)
    _check(p, wallet, notional_cents, today, used_today=lambda: _used_today(participant_id=p.id, day=today))


def assert_may_transact_and_reserve(*, participant: Participant, wallet: Wallet | None, notional_cents: int,
                                    reference: str, today: date | None = None) -> NotionalUsage:
    """The gate and the daily-cap reservation in one step, under the participant's row lock: what a new
    request calls in the transaction that creates it. Concurrent requests of one participant queue on
    the lock, so they cannot both squeeze under the cap. Idempotent per `reference`."""
    from compliance.services import _used_today

    today = today or timezone.localdate()
    with transaction.atomic():
        p = Participant.objects.select_for_update().get(pk=participant.pk)
        existing = NotionalUsage.objects.filter(reference=reference).first()
        if existing is not None and (existing.participant_id != p.id or existing.notional_cents != notional_cents):
            raise DomainError(f"usage reference {reference!r} was recorded with other values",
                              code="usage_reference_conflict", http_status=409)
        _check(p, wallet, notional_cents, today, used_today=lambda: _used_today(participant_id=p.id, day=today)
               - (existing.notional_cents if existing and existing.released_at is None else 0))
        if existing is not None:
            return existing
        return NotionalUsage.objects.create(participant=p, reference=reference, notional_cents=notional_cents,
                                            usage_date=today)


def _check(p: Participant, wallet: Wallet | None, notional_cents: int, today: date, *, used_today) -> None:
    if p.sanctions_hold or p.aml_risk == AmlRisk.PROHIBITED or p.kyc_status == KycStatus.SUSPENDED:
        _refuse("participant_blocked", "this participant is blocked pending a compliance review")
    if p.kyc_status == KycStatus.EXPIRED or (
        p.kyc_status == KycStatus.APPROVED and (p.kyc_expires_on is None or p.kyc_expires_on <= today)
    ):
        # Checked against the date, not only the status, so expiry blocks even before the nightly task runs.
        _refuse("kyc_expired", "this participant's KYC has expired")
    if p.kyc_status != KycStatus.APPROVED:
        _refuse("kyc_not_approved", "this participant's KYC is not approved")
    if wallet is not None:
        w = Wallet.objects.filter(pk=wallet.pk).first()
        if w is None or w.participant_id != p.id:
            _refuse("wallet_not_owned", "this wallet is not registered to this participant")
        if w.sanctions_hold:
            _refuse("wallet_sanctioned", "this wallet is blocked by sanctions screening")
        if w.frozen:
            _refuse("wallet_frozen", "this wallet is frozen")
        if w.status != WalletStatus.VERIFIED:
            _refuse("wallet_not_verified", "this wallet has not proven control of its address")
    if isinstance(notional_cents, bool) or not isinstance(notional_cents, int) or notional_cents <= 0:
        raise DomainError("notional must be a positive integer of cents", code="invalid_notional")
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
