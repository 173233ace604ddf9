"""compliance.gates.assert_may_transact: every refusal code, and KYC expiry blocking by itself."""

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from compliance import gates, roles, services
from compliance.models import AmlRisk, Chain, ComplianceAlert, KycStatus, Participant
from config.api import DomainError
from ledger.selectors import read_stream
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db


def refusal(**kwargs) -> str:
    with pytest.raises(gates.ComplianceRefusal) as err:
        gates.assert_may_transact(**kwargs)
    assert isinstance(err.value, DomainError) and err.value.http_status in (403, 422)
    return err.value.code


def test_an_approved_participant_with_a_verified_wallet_within_limits_may_transact():
    mm = f.make_market_maker(chains=(Chain.ETHEREUM,))
    gates.assert_may_transact(participant=mm.participant, wallet=mm.wallets[Chain.ETHEREUM], notional_cents=500_00)


def test_kyc_states_refuse():
    mm = f.make_market_maker(chains=(Chain.SOLANA,))
    wallet = mm.wallets[Chain.SOLANA]
    officer = f.make_staff(roles.COMPLIANCE_OFFICER)
    pending = f.make_participant(approved=False)
    assert refusal(participant=pending, wallet=None, notional_cents=500_00) == "kyc_not_approved"
    services.participant_kyc_suspend(participant=mm.participant, decided_by=officer, reason="adverse media")
    assert refusal(participant=mm.participant, wallet=wallet, notional_cents=500_00) == "participant_blocked"
    services.participant_kyc_reject(participant=mm.participant, decided_by=officer, reason="adverse media confirmed")
    assert refusal(participant=mm.participant, wallet=wallet, notional_cents=500_00) == "kyc_not_approved"


def test_prohibited_aml_risk_blocks():
    mm = f.make_market_maker(chains=())
    officer = f.make_staff(roles.COMPLIANCE_OFFICER)
    services.participant_aml_risk_set(participant=mm.participant, risk=AmlRisk.PROHIBITED, decided_by=officer,
                                      reason="ownership undisclosed")
    assert refusal(participant=mm.participant, wallet=None, notional_cents=500_00) == "participant_blocked"


def test_wallet_conditions_refuse():
    a = f.make_market_maker(chains=(Chain.ETHEREUM,))
    b = f.make_market_maker(chains=(Chain.ETHEREUM,))
    officer = f.make_staff(roles.COMPLIANCE_OFFICER)
    wallet = a.wallets[Chain.ETHEREUM]
    assert refusal(participant=a.participant, wallet=b.wallets[Chain.ETHEREUM], notional_cents=500_00) == \
        "wallet_not_owned"
    unverified = services.wallet_register(participant=a.participant, chain=Chain.BASE,
                                          address=f.wallet_address(Chain.BASE, f.new_wallet_key(Chain.BASE)),
                                          actor="system")
    assert refusal(participant=a.participant, wallet=unverified, notional_cents=500_00) == "wallet_not_verified"
    services.wallet_freeze(wallet=wallet, decided_by=officer, reason="suspicious flows")
    assert refusal(participant=a.participant, wallet=wallet, notional_cents=500_00) == "wallet_frozen"
    services.wallet_unfreeze(wallet=wallet, decided_by=officer, reason="explained")
    gates.assert_may_transact(participant=a.participant, wallet=wallet, notional_cents=500_00)


def test_limits_refuse_with_their_own_codes():
    mm = f.make_market_maker(chains=(), min_request_cents=1_000_00, max_request_cents=10_000_00,
                             daily_limit_cents=25_000_00)
    p = mm.participant
    assert refusal(participant=p, wallet=None, notional_cents=999_99) == "below_minimum"
    assert refusal(participant=p, wallet=None, notional_cents=10_000_01) == "above_request_limit"
    gates.assert_may_transact(participant=p, wallet=None, notional_cents=10_000_00)
    gates.assert_may_transact_and_reserve(participant=p, wallet=None, notional_cents=10_000_00, reference="mint-1")
    gates.assert_may_transact_and_reserve(participant=p, wallet=None, notional_cents=10_000_00, reference="mint-2")
    assert refusal(participant=p, wallet=None, notional_cents=5_000_01) == "above_daily_limit"
    gates.assert_may_transact(participant=p, wallet=None, notional_cents=5_000_00)
    # Reserving is idempotent per reference and checks the cap itself.
    gates.assert_may_transact_and_reserve(participant=p, wallet=None, notional_cents=10_000_00, reference="mint-2")
    with pytest.raises(gates.ComplianceRefusal) as err:
        gates.assert_may_transact_and_reserve(participant=p, wallet=None, notional_cents=5_000_01, reference="mint-3")
    assert err.value.code == "above_daily_limit"
    with pytest.raises(DomainError) as err:
        gates.assert_may_transact_and_reserve(participant=p, wallet=None, notional_cents=9_000_00, reference="mint-2")
    assert err.value.code == "usage_reference_conflict"
    services.notional_usage_release(reference="mint-2")
    gates.assert_may_transact(participant=p, wallet=None, notional_cents=10_000_00)
    # The cap is per day.
    tomorrow = timezone.localdate() + timedelta(days=1)
    gates.assert_may_transact(participant=p, wallet=None, notional_cents=10_000_00, today=tomorrow)


def test_kyc_expiry_blocks_a_request_by_itself_before_the_task_runs(client):
    mm = f.make_market_maker(chains=(Chain.ETHEREUM,), kyc_expires_on=timezone.localdate() + timedelta(days=3))
    wallet = mm.wallets[Chain.ETHEREUM]
    gates.assert_may_transact(participant=mm.participant, wallet=wallet, notional_cents=500_00)
    in_three_days = timezone.localdate() + timedelta(days=3)
    assert refusal(participant=mm.participant, wallet=wallet, notional_cents=500_00, today=in_three_days) == \
        "kyc_expired"
    # The status still says approved: the gate read the date, not the (not yet updated) status.
    assert Participant.objects.get(pk=mm.participant.pk).kyc_status == KycStatus.APPROVED


def test_the_expiry_task_moves_status_alerts_compliance_and_records_the_event(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    officer = f.make_staff(roles.COMPLIANCE_OFFICER)
    mm = f.make_market_maker(chains=(), kyc_expires_on=timezone.localdate() + timedelta(days=1))
    fresh = f.make_market_maker(chains=())
    day_after = timezone.localdate() + timedelta(days=1)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        expired = services.kyc_expire_due(today=day_after)
    assert expired == [mm.participant.id]
    mm.participant.refresh_from_db()
    fresh.participant.refresh_from_db()
    assert mm.participant.kyc_status == KycStatus.EXPIRED
    assert fresh.participant.kyc_status == KycStatus.APPROVED
    assert refusal(participant=mm.participant, wallet=None, notional_cents=500_00) == "kyc_expired"
    alert = ComplianceAlert.objects.get(kind="kyc_expired", participant=mm.participant)
    assert mm.participant.legal_name in alert.message
    assert any(officer.email in m.to for m in mail.outbox)
    last = read_stream(stream=f"participant-{mm.participant.id}")[-1]
    assert last.type == "compliance.kyc_status_changed" and last.data["to_status"] == "expired"
    assert last.metadata["actor"] == "task:kyc_expiry"
    assert services.kyc_expire_due(today=day_after) == []  # idempotent
    assert ComplianceAlert.objects.filter(kind="kyc_expired", participant=mm.participant).count() == 1


def test_renewal_after_expiry_needs_a_second_person():
    operations = f.make_staff(roles.OPERATIONS)
    officer = f.make_staff(roles.COMPLIANCE_OFFICER)
    officer2 = f.make_staff(roles.COMPLIANCE_OFFICER)
    mm = f.make_market_maker(chains=(), operations=operations, officer=officer,
                             kyc_expires_on=timezone.localdate() + timedelta(days=1))
    services.kyc_expire_due(today=timezone.localdate() + timedelta(days=1))
    services.participant_kyc_resubmit(participant=mm.participant, submitted_by=officer, reason="renewal docs in")
    with pytest.raises(DomainError) as err:
        services.participant_kyc_approve(participant=mm.participant, approved_by=officer, reason="ok",
                                         expires_on=timezone.localdate() + timedelta(days=365))
    assert err.value.code == "four_eyes_violation"
    services.participant_kyc_approve(participant=mm.participant, approved_by=officer2, reason="renewed",
                                     expires_on=timezone.localdate() + timedelta(days=365))
    gates.assert_may_transact(participant=mm.participant, wallet=None, notional_cents=500_00)


def test_refusal_codes_are_the_documented_set():
    assert set(gates.REFUSAL_CODES) == {
        "kyc_not_approved", "kyc_expired", "participant_blocked", "wallet_not_verified", "wallet_frozen",
        "wallet_not_owned", "wallet_sanctioned", "below_minimum", "above_request_limit", "above_daily_limit"}
    assert issubclass(gates.ComplianceRefusal, DomainError)


@pytest.mark.celery
def test_the_beat_task_runs_on_a_real_worker(committed, celery_worker_process):
    from compliance.tasks import expire_kyc

    mm = f.make_market_maker(chains=(), kyc_expires_on=timezone.localdate() + timedelta(days=1))
    Participant.objects.filter(pk=mm.participant.pk).update(kyc_expires_on=timezone.localdate())
    expire_kyc.delay()
    deadline = time.monotonic() + 60  # waits for the worker; not a speed assertion
    while Participant.objects.get(pk=mm.participant.pk).kyc_status != KycStatus.EXPIRED:
        assert time.monotonic() < deadline, "the worker did not expire the KYC"
        time.sleep(0.2)
    assert ComplianceAlert.objects.filter(kind="kyc_expired", participant=mm.participant).exists()


def test_gate_and_reservation_together_never_let_two_requests_past_the_cap(committed):
    import threading

    from django.db import connection

    from compliance.models import NotionalUsage

    participant = f.make_participant(min_request_cents=1, max_request_cents=1_000_00, daily_limit_cents=1_500_00)
    wallet, _key = f.make_verified_wallet(participant, Chain.ETHEREUM)
    barrier = threading.Barrier(4)
    outcomes = []

    def attempt(i):
        try:
            barrier.wait()
            gates.assert_may_transact_and_reserve(participant=participant, wallet=wallet, notional_cents=1_000_00,
                                                  reference=f"race-{i}")
            outcomes.append("reserved")
        except gates.ComplianceRefusal as refusal:
            outcomes.append(refusal.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["above_daily_limit"] * 3 + ["reserved"]
    assert NotionalUsage.objects.filter(participant=participant).count() == 1
    # The same reference again is the same reservation, not a second one.
    reference = NotionalUsage.objects.get(participant=participant).reference
    gates.assert_may_transact_and_reserve(participant=participant, wallet=wallet, notional_cents=1_000_00,
                                          reference=reference)
    assert NotionalUsage.objects.filter(participant=participant).count() == 1
