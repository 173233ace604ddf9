"""Every state change of the compliance app. Each command validates, writes its rows, and appends the
ledger event recording who decided and why as the last write of its transaction."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance import crypto, roles, screening
from compliance.models import (
    EVM_CHAINS,
    AmlRisk,
    ApiKey,
    ApiScope,
    CaseStatus,
    ComplianceAlert,
    ComplianceCase,
    KycStatus,
    MarketMakerUser,
    NotionalUsage,
    Participant,
    SanctionsAddress,
    SanctionsList,
    ScreeningResult,
    ScreeningSubject,
    SignatureAlgorithm,
    Wallet,
    WalletChallenge,
    WalletStatus,
)
from compliance.validation import InvalidInput, validate_address, validate_jurisdiction, validate_lei
from config.api import DomainError
from config.logging import current_correlation_id
from ledger.services import NewEvent, append

User = get_user_model()

WALLET_CHALLENGE_TTL = timedelta(minutes=10)


class Conflict(DomainError):
    http_status = 409


class InvalidTransition(DomainError):
    code = "invalid_transition"
    http_status = 409


def _actor(user) -> str:
    return f"user:{user.id}" if user is not None else "system"


def _record(events: list[NewEvent], *, actor: str) -> None:
    append(events=events, actor=actor, correlation_id=current_correlation_id())


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a reason is required for this decision", code="reason_required")
    return reason


def _lock(model, pk):
    return model.objects.select_for_update().get(pk=pk)


# --- Participants ---------------------------------------------------------------------------------

def participant_create(
    *,
    legal_name: str,
    lei: str,
    jurisdiction: str,
    created_by,
    contact_name: str = "",
    contact_email: str = "",
    contact_phone: str = "",
    aml_risk: str = AmlRisk.MEDIUM,
) -> Participant:
    """Onboard a market maker. KYC starts pending; `created_by` is its initiator for four eyes."""
    legal_name = (legal_name or "").strip()
    if not legal_name:
        raise InvalidInput("legal name is required", code="invalid_legal_name")
    lei = validate_lei(lei)
    jurisdiction = validate_jurisdiction(jurisdiction)
    if aml_risk not in AmlRisk.values:
        raise InvalidInput(f"unknown AML risk {aml_risk!r}", code="invalid_aml_risk")
    if Participant.objects.filter(lei=lei).exists():
        raise Conflict(f"a participant with LEI {lei} exists", code="participant_exists")
    with transaction.atomic():
        participant = Participant.objects.create(
            legal_name=legal_name, lei=lei, jurisdiction=jurisdiction, contact_name=contact_name,
            contact_email=contact_email, contact_phone=contact_phone, aml_risk=aml_risk,
            kyc_submitted_by=created_by,
        )
        _record([NewEvent(stream=f"participant-{participant.id}", type="compliance.participant_created",
                          data={"participant_id": participant.id, "legal_name": legal_name, "lei": lei,
                                "jurisdiction": jurisdiction})],
                actor=_actor(created_by))
    participant_screen(participant=participant, trigger="onboarding")
    participant.refresh_from_db()
    return participant


_EDITABLE = ("legal_name", "jurisdiction", "contact_name", "contact_email", "contact_phone")


def participant_update(*, participant: Participant, changed_by, reason: str, **changes: str) -> Participant:
    """Correct a participant's identity or contact details. A new legal name is screened again."""
    reason = _require_reason(reason)
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise InvalidInput(f"not editable here: {sorted(unknown)}", code="invalid_field")
    if "jurisdiction" in changes:
        changes["jurisdiction"] = validate_jurisdiction(changes["jurisdiction"])
    if "legal_name" in changes:
        changes["legal_name"] = (changes["legal_name"] or "").strip()
        if not changes["legal_name"]:
            raise InvalidInput("legal name is required", code="invalid_legal_name")
    with transaction.atomic():
        p = _lock(Participant, participant.pk)
        diff = {k: v for k, v in changes.items() if getattr(p, k) != v}
        if not diff:
            return p
        for field_name, value in diff.items():
            setattr(p, field_name, value)
        p.save(update_fields=[*diff, "updated_at"])
        _record([NewEvent(stream=f"participant-{p.id}", type="compliance.participant_updated",
                          data={"participant_id": p.id, "changes": diff, "reason": reason})], actor=_actor(changed_by))
    if "legal_name" in diff:
        participant_screen(participant=p, trigger="name_change")
        p.refresh_from_db()
    return p


_KYC_TRANSITIONS: dict[str, set[str]] = {
    KycStatus.PENDING: {KycStatus.APPROVED, KycStatus.REJECTED},
    KycStatus.APPROVED: {KycStatus.APPROVED, KycStatus.SUSPENDED, KycStatus.EXPIRED, KycStatus.REJECTED},
    KycStatus.SUSPENDED: {KycStatus.APPROVED, KycStatus.REJECTED},
    KycStatus.EXPIRED: {KycStatus.APPROVED, KycStatus.PENDING, KycStatus.REJECTED},
    KycStatus.REJECTED: {KycStatus.PENDING},
}


def _kyc_transition(*, participant: Participant, to_status: str, actor: str, reason: str,
                    expires_on: date | None = None, review_on: date | None = None,
                    submitted_by=None, approver=None) -> Participant:
    with transaction.atomic():
        p = _lock(Participant, participant.pk)
        if approver is not None:
            # Read under the row lock: a resubmission a moment ago changed who the initiator is.
            roles.assert_four_eyes(initiator_id=p.kyc_submitted_by_id, approver_id=approver.id)
        if to_status not in _KYC_TRANSITIONS[p.kyc_status]:
            raise InvalidTransition(f"KYC cannot go from {p.kyc_status} to {to_status}")
        from_status = p.kyc_status
        p.kyc_status = to_status
        if to_status == KycStatus.APPROVED:
            p.kyc_approved_on = timezone.localdate()
            p.kyc_expires_on = expires_on
            p.kyc_review_on = review_on
        if to_status == KycStatus.PENDING:
            p.kyc_submitted_by = submitted_by
        p.save()
        _record([NewEvent(stream=f"participant-{p.id}", type="compliance.kyc_status_changed",
                          data={"participant_id": p.id, "from_status": from_status, "to_status": to_status,
                                "expires_on": p.kyc_expires_on.isoformat() if p.kyc_expires_on else None,
                                "review_on": p.kyc_review_on.isoformat() if p.kyc_review_on else None,
                                "reason": reason})],
                actor=actor)
    return p


def participant_kyc_approve(*, participant: Participant, approved_by, expires_on: date, reason: str,
                            review_on: date | None = None) -> Participant:
    """A compliance officer approves KYC (or renews it). Four eyes: not the person who submitted it."""
    reason = _require_reason(reason)
    if not roles.user_has_role(approved_by, roles.COMPLIANCE_OFFICER):
        raise DomainError("only a compliance officer may approve KYC", code="permission_denied", http_status=403)
    today = timezone.localdate()
    if expires_on is None or expires_on <= today:
        raise InvalidInput("KYC approval needs an expiry date in the future", code="invalid_expiry")
    if review_on is not None and not today < review_on <= expires_on:
        raise InvalidInput("the review date must fall between today and the expiry", code="invalid_review_date")
    return _kyc_transition(participant=participant, to_status=KycStatus.APPROVED, actor=_actor(approved_by),
                           reason=reason, expires_on=expires_on, review_on=review_on, approver=approved_by)


def participant_kyc_reject(*, participant: Participant, decided_by, reason: str) -> Participant:
    return _kyc_transition(participant=participant, to_status=KycStatus.REJECTED, actor=_actor(decided_by),
                           reason=_require_reason(reason))


def participant_kyc_suspend(*, participant: Participant, decided_by, reason: str) -> Participant:
    return _kyc_transition(participant=participant, to_status=KycStatus.SUSPENDED, actor=_actor(decided_by),
                           reason=_require_reason(reason))


def participant_kyc_resubmit(*, participant: Participant, submitted_by, reason: str) -> Participant:
    """Operations sends a rejected or expired participant back for review; they become the initiator."""
    return _kyc_transition(participant=participant, to_status=KycStatus.PENDING, actor=_actor(submitted_by),
                           reason=_require_reason(reason), submitted_by=submitted_by)


def participant_aml_risk_set(*, participant: Participant, risk: str, decided_by, reason: str) -> Participant:
    reason = _require_reason(reason)
    if risk not in AmlRisk.values:
        raise InvalidInput(f"unknown AML risk {risk!r}", code="invalid_aml_risk")
    with transaction.atomic():
        p = _lock(Participant, participant.pk)
        if p.aml_risk == risk:
            return p
        from_risk, p.aml_risk = p.aml_risk, risk
        p.save(update_fields=["aml_risk", "updated_at"])
        _record([NewEvent(stream=f"participant-{p.id}", type="compliance.aml_risk_changed",
                          data={"participant_id": p.id, "from_risk": from_risk, "to_risk": risk,
                                "reason": reason})], actor=_actor(decided_by))
    return p


def participant_limits_set(*, participant: Participant, min_request_cents: int, max_request_cents: int,
                           daily_limit_cents: int, decided_by, reason: str) -> Participant:
    reason = _require_reason(reason)
    values = (min_request_cents, max_request_cents, daily_limit_cents)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise InvalidInput("limits are non-negative integers of cents", code="invalid_limits")
    if max_request_cents and min_request_cents > max_request_cents:
        raise InvalidInput("the minimum exceeds the per-request cap", code="invalid_limits")
    if daily_limit_cents and max_request_cents > daily_limit_cents:
        raise InvalidInput("the per-request cap exceeds the daily cap", code="invalid_limits")
    with transaction.atomic():
        p = _lock(Participant, participant.pk)
        p.min_request_cents, p.max_request_cents, p.daily_limit_cents = values
        p.save(update_fields=["min_request_cents", "max_request_cents", "daily_limit_cents", "updated_at"])
        _record([NewEvent(stream=f"participant-{p.id}", type="compliance.limits_changed",
                          data={"participant_id": p.id, "min_request_cents": min_request_cents,
                                "max_request_cents": max_request_cents, "daily_limit_cents": daily_limit_cents,
                                "reason": reason})], actor=_actor(decided_by))
    return p


def participant_user_create(*, participant: Participant, username: str, email: str = "", created_by=None):
    """An API user of a market maker: no password, no admin access, in the market_maker group."""
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email)
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name=roles.MARKET_MAKER))
        MarketMakerUser.objects.create(user=user, participant=participant)
    return user


def staff_user_create(*, username: str, role: str, email: str = "", password: str | None = None):
    if role not in roles.STAFF_ROLES:
        raise InvalidInput(f"unknown staff role {role!r}", code="invalid_role")
    user = User.objects.create_user(username=username, email=email, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def staff_totp_enroll(*, user, replace: bool = False):
    """Give a staff member a TOTP device (their authenticator app's second factor for the admin) and
    return it; its `config_url` (otpauth://) is what they load into the app, shown once by the caller.
    A staff member who already has one keeps it unless `replace` (a lost phone): then every old device
    stops working in the same transaction."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not user.is_staff:
        raise InvalidInput(f"{user.username} is not staff", code="not_staff")
    with transaction.atomic():
        existing = TOTPDevice.objects.select_for_update().filter(user=user)
        if existing.exists():
            if not replace:
                raise Conflict(f"{user.username} already has a TOTP device", code="totp_device_exists")
            existing.delete()
        return TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=True)


def _alert(*, kind: str, participant: Participant | None, message: str, dedupe_key: str) -> bool:
    _, created = ComplianceAlert.objects.get_or_create(
        dedupe_key=dedupe_key, defaults={"kind": kind, "participant": participant, "message": message})
    if created:
        from django.core.mail import send_mail

        recipients = list(User.objects.filter(groups__name=roles.COMPLIANCE_OFFICER, is_active=True)
                          .exclude(email="").values_list("email", flat=True))
        if recipients:
            # The alert row is the record; mail is a courtesy that must not undo the state change.
            transaction.on_commit(lambda: send_mail(f"[compliance] {kind}", message, None, recipients,
                                                    fail_silently=True))
    return created


def kyc_expire_due(*, today: date | None = None) -> list[int]:
    """Move approved participants whose KYC expired to `expired`, and alert on reviews falling due."""
    today = today or timezone.localdate()
    expired: list[int] = []
    due = Participant.objects.filter(kyc_status=KycStatus.APPROVED, kyc_expires_on__lte=today).values_list(
        "id", flat=True)
    for pid in due:
        with transaction.atomic():
            p = _lock(Participant, pid)
            if p.kyc_status != KycStatus.APPROVED or p.kyc_expires_on is None or p.kyc_expires_on > today:
                continue
            _alert(kind="kyc_expired", participant=p, dedupe_key=f"kyc_expired:{p.id}:{p.kyc_expires_on}",
                   message=f"KYC of {p.legal_name} (participant {p.id}) expired on {p.kyc_expires_on}; "
                           "new mint and redeem requests are refused until it is renewed.")
            _kyc_transition(participant=p, to_status=KycStatus.EXPIRED, actor="task:kyc_expiry",
                            reason=f"KYC expiry date {p.kyc_expires_on} reached")
            expired.append(p.id)
    for p in Participant.objects.filter(kyc_status=KycStatus.APPROVED, kyc_review_on__lte=today):
        _alert(kind="kyc_review_due", participant=p, dedupe_key=f"kyc_review:{p.id}:{p.kyc_review_on}",
               message=f"KYC review of {p.legal_name} (participant {p.id}) was due on {p.kyc_review_on}.")
    return expired


def alert_acknowledge(*, alert: ComplianceAlert, user) -> ComplianceAlert:
    if alert.acknowledged_at is None:
        alert.acknowledged_by, alert.acknowledged_at = user, timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
    return alert


# --- Wallets --------------------------------------------------------------------------------------

def wallet_register(*, participant: Participant, chain: str, address: str, label: str = "",
                    actor: str) -> Wallet:
    address = validate_address(chain=chain, address=address)
    try:
        with transaction.atomic():
            wallet = Wallet.objects.create(participant=participant, chain=chain, address=address, label=label[:100])
            _record([NewEvent(stream=f"wallet-{wallet.id}", type="compliance.wallet_registered",
                              data={"wallet_id": wallet.id, "participant_id": participant.id, "chain": chain,
                                    "address": address})], actor=actor)
    except IntegrityError:
        raise Conflict("this address is already registered", code="wallet_already_registered") from None
    wallet_screen(wallet=wallet, trigger="registration")
    wallet.refresh_from_db()
    return wallet


def _challenge_message(*, wallet: Wallet, nonce: str, expires_at) -> str:
    # Human-readable so a signer sees what they approve; bound to participant, chain, address and time.
    return (
        f"{getattr(settings, 'COMPLIANCE_CHALLENGE_DOMAIN', 'Tokenized stock issuer')} wallet ownership proof\n"
        f"Participant: {wallet.participant_id}\n"
        f"Chain: {wallet.chain}\n"
        f"Address: {wallet.address}\n"
        f"Nonce: {nonce}\n"
        f"Expires: {expires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )


def wallet_challenge_issue(*, wallet: Wallet) -> WalletChallenge:
    if wallet.status == WalletStatus.VERIFIED:
        raise Conflict("this wallet is already verified", code="wallet_already_verified")
    nonce = secrets.token_hex(16)
    expires_at = (timezone.now() + WALLET_CHALLENGE_TTL).replace(microsecond=0)
    return WalletChallenge.objects.create(wallet=wallet, nonce=nonce, expires_at=expires_at,
                                          message=_challenge_message(wallet=wallet, nonce=nonce,
                                                                     expires_at=expires_at))


def _signature_valid(*, wallet: Wallet, message: str, signature: str) -> bool:
    if wallet.chain in EVM_CHAINS:
        from eth_account import Account
        from eth_account.messages import encode_defunct

        try:
            recovered = Account.recover_message(encode_defunct(text=message), signature=signature)
        except Exception:  # noqa: BLE001 - any malformed signature is simply not a proof
            return False
        return recovered == wallet.address
    import base58
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        raw = base58.b58decode(signature)
        VerifyKey(base58.b58decode(wallet.address)).verify(message.encode(), raw)
    except (ValueError, BadSignatureError):
        return False
    return True


def wallet_verify(*, wallet: Wallet, signature: str, actor: str) -> Wallet:
    """Prove control: the signature must be over the newest unexpired, unused challenge."""
    with transaction.atomic():
        w = _lock(Wallet, wallet.pk)
        if w.status == WalletStatus.VERIFIED:
            raise Conflict("this wallet is already verified", code="wallet_already_verified")
        challenge = (WalletChallenge.objects.select_for_update().filter(wallet=w, used_at__isnull=True)
                     .order_by("-id").first())
        now = timezone.now()
        if challenge is None or challenge.expires_at <= now:
            raise DomainError("request a new challenge first", code="challenge_expired", http_status=422)
        if not isinstance(signature, str) or not _signature_valid(wallet=w, message=challenge.message,
                                                                  signature=signature):
            raise DomainError("the signature does not prove control of this address",
                              code="invalid_wallet_signature", http_status=422)
        challenge.used_at = now
        challenge.save(update_fields=["used_at"])
        w.status, w.verified_at = WalletStatus.VERIFIED, now
        w.save(update_fields=["status", "verified_at"])
        _record([NewEvent(stream=f"wallet-{w.id}", type="compliance.wallet_verified",
                          data={"wallet_id": w.id, "participant_id": w.participant_id,
                                "challenge_nonce": challenge.nonce})], actor=actor)
    return w


def wallet_freeze(*, wallet: Wallet, decided_by, reason: str) -> Wallet:
    reason = _require_reason(reason)
    with transaction.atomic():
        w = _lock(Wallet, wallet.pk)
        if w.frozen:
            raise Conflict("this wallet is already frozen", code="wallet_already_frozen")
        w.frozen, w.frozen_reason = True, reason
        w.save(update_fields=["frozen", "frozen_reason"])
        _record([NewEvent(stream=f"wallet-{w.id}", type="compliance.wallet_frozen",
                          data={"wallet_id": w.id, "participant_id": w.participant_id, "reason": reason})],
                actor=_actor(decided_by))
    return w


def wallet_unfreeze(*, wallet: Wallet, decided_by, reason: str) -> Wallet:
    reason = _require_reason(reason)
    with transaction.atomic():
        w = _lock(Wallet, wallet.pk)
        if not w.frozen:
            raise Conflict("this wallet is not frozen", code="wallet_not_frozen")
        w.frozen, w.frozen_reason = False, ""
        w.save(update_fields=["frozen", "frozen_reason"])
        _record([NewEvent(stream=f"wallet-{w.id}", type="compliance.wallet_unfrozen",
                          data={"wallet_id": w.id, "participant_id": w.participant_id, "reason": reason})],
                actor=_actor(decided_by))
    return w


# --- Daily notional usage -------------------------------------------------------------------------

def notional_usage_release(*, reference: str) -> None:
    """A rejected or cancelled request stops counting against the cap."""
    NotionalUsage.objects.filter(reference=reference, released_at__isnull=True).update(released_at=timezone.now())


# --- API keys -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IssuedCredentials:
    """Returned once at creation; the secrets are not recoverable afterwards."""

    key_id: str
    secret: str
    signature_alg: str
    hmac_key: str | None  # base64url; None for Ed25519 keys (the holder keeps the private key)

    @property
    def token(self) -> str:
        return f"{self.key_id}.{self.secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, user, scope: str, signature_alg: str, created_by=None, participant: Participant | None = None,
                   ed25519_public_key: bytes | None = None, label: str = "", secret: str | None = None,
                   hmac_key_raw: bytes | None = None) -> tuple[ApiKey, IssuedCredentials]:
    """Issue an API key. `secret`/`hmac_key_raw` exist for deterministic demo data only; leave them unset
    and fresh random secrets are generated."""
    if scope not in ApiScope.values:
        raise InvalidInput(f"unknown scope {scope!r}", code="invalid_scope")
    if signature_alg not in SignatureAlgorithm.values:
        raise InvalidInput(f"unknown signature algorithm {signature_alg!r}", code="invalid_signature_alg")
    if participant is None:
        if not roles.user_has_role(user, roles.AUDITOR) or scope != ApiScope.READ:
            raise InvalidInput("keys without a participant are read-only auditor keys", code="invalid_api_key_owner")
    else:
        link = MarketMakerUser.objects.filter(user=user).first()
        if link is None or link.participant_id != participant.id:
            raise InvalidInput("the key's user must be an API user of that participant", code="invalid_api_key_owner")
    hmac_key = None
    encrypted = ""
    if signature_alg == SignatureAlgorithm.ED25519:
        if not isinstance(ed25519_public_key, bytes) or len(ed25519_public_key) != 32:
            raise InvalidInput("an Ed25519 key needs its 32-byte public key", code="invalid_public_key")
    else:
        ed25519_public_key = None
        raw = hmac_key_raw or secrets.token_bytes(32)
        if len(raw) < 32:
            raise InvalidInput("an HMAC key has at least 32 bytes", code="invalid_hmac_key")
        hmac_key = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        encrypted = crypto.encrypt(raw)
    key_id = "mk_" + secrets.token_hex(10)
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 32:
        raise InvalidInput("an API secret has at least 32 characters", code="invalid_secret")
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            key_id=key_id, user=user, participant=participant, scope=scope, secret_hash=hash_secret(secret),
            signature_alg=signature_alg, hmac_key_encrypted=encrypted, ed25519_public_key=ed25519_public_key,
            label=label, created_by=created_by)
        _record([NewEvent(stream=f"api-key-{api_key.id}", type="compliance.api_key_created",
                          data={"api_key_id": api_key.id, "key_id": key_id, "user_id": user.id,
                                "participant_id": participant.id if participant else None, "scope": scope,
                                "signature_alg": signature_alg})], actor=_actor(created_by))
    return api_key, IssuedCredentials(key_id=key_id, secret=secret, signature_alg=signature_alg, hmac_key=hmac_key)


def api_key_revoke(*, api_key: ApiKey, revoked_by, reason: str) -> ApiKey:
    reason = _require_reason(reason)
    with transaction.atomic():
        key = _lock(ApiKey, api_key.pk)
        if key.revoked_at is not None:
            return key
        key.revoked_at, key.revoked_reason = timezone.now(), reason
        key.save(update_fields=["revoked_at", "revoked_reason"])
        _record([NewEvent(stream=f"api-key-{key.id}", type="compliance.api_key_revoked",
                          data={"api_key_id": key.id, "key_id": key.key_id, "reason": reason})],
                actor=_actor(revoked_by))
    return key


# --- Sanctions: import, screening, cases ----------------------------------------------------------

SANCTIONS_MIN_ENTRIES_PERCENT = 90  # of the current list's entries; a smaller list needs a second officer


class SanctionsListHeldForApproval(DomainError):
    """The import is stored but not current: it is much smaller than the current list."""

    code = "sanctions_list_shrunk"
    http_status = 409


def _require_sanctions_importer(user) -> None:
    if user is None or not user.is_active or not user.has_perm("compliance.import_sanctions"):
        raise DomainError("sanctions lists are imported by a compliance officer", code="permission_denied",
                          http_status=403)


def sanctions_list_import(*, source: str, content: bytes, imported_by) -> SanctionsList:
    """Load an OFAC SDN XML file as the current list, then re-screen every participant and wallet.

    Refused, changing nothing: a file that does not state its Record_Count or holds another number of
    entries (screening.parse_sdn_xml), and an importer who is not a compliance officer. A list with
    fewer than SANCTIONS_MIN_ENTRIES_PERCENT % of the current list's entries (a truncated or wrong
    download would otherwise quietly lift sanctions) is stored but held, not made current, and
    SanctionsListHeldForApproval is raised once that is committed: a second compliance officer makes it
    current with sanctions_list_approve_shrink, or nobody does."""
    _require_sanctions_importer(imported_by)
    parsed = screening.parse_sdn_xml(content)
    digest = hashlib.sha256(content).hexdigest()
    source = source[:500]
    with transaction.atomic():
        # Locked, so two imports at once compare against the same current list one after the other.
        current = SanctionsList.objects.select_for_update().filter(is_current=True).first()
        entry_count = len(parsed.entries)
        shrunk = current is not None and entry_count * 100 < current.entry_count * SANCTIONS_MIN_ENTRIES_PERCENT
        if shrunk:
            # The same file again (a retry) is the same held list, not another one.
            held = SanctionsList.objects.filter(held=True, sha256=digest, compared_to=current).first()
            if held is None:
                held = screening.store_list(parsed=parsed, source=source, sha256=digest, imported_by=imported_by,
                                            is_current=False, compared_to=current)
                _record([NewEvent(stream=f"sanctions-list-{held.id}", type="compliance.sanctions_list_held",
                                  data={"list_id": held.id, "source": source, "sha256": digest,
                                        "publish_date": _iso(parsed.publish_date),
                                        "record_count": parsed.record_count, "entry_count": entry_count,
                                        "imported_by": imported_by.id, "current_list_id": current.id,
                                        "current_entry_count": current.entry_count,
                                        "min_percent": SANCTIONS_MIN_ENTRIES_PERCENT})],
                        actor=_actor(imported_by))
        else:
            SanctionsList.objects.filter(is_current=True).update(is_current=False)
            sanctions_list = screening.store_list(parsed=parsed, source=source, sha256=digest,
                                                  imported_by=imported_by, compared_to=current)
            _record([_list_imported_event(sanctions_list, address_count=sum(len(e.addresses) for e in parsed.entries))],
                    actor=_actor(imported_by))
    if shrunk:
        raise SanctionsListHeldForApproval(
            f"the new list has {entry_count} entries, fewer than {SANCTIONS_MIN_ENTRIES_PERCENT}% of the "
            f"current list's {current.entry_count}; it is held as list {held.id} until a second compliance "
            f"officer approves it (manage.py sanctions_approve_shrink {held.id} --user <username> --reason ...)",
            details={"held_list_id": held.id, "entry_count": entry_count,
                     "current_entry_count": current.entry_count, "min_percent": SANCTIONS_MIN_ENTRIES_PERCENT})
    rescreen_all(trigger=f"list_import:{sanctions_list.id}")
    return sanctions_list


def sanctions_list_approve_shrink(*, sanctions_list: SanctionsList, approved_by, reason: str) -> SanctionsList:
    """A second compliance officer, not the importer, makes a held (much smaller) list current, then
    everyone is re-screened against it. Refused if another list became current since it was held."""
    reason = _require_reason(reason)
    if not roles.user_has_role(approved_by, roles.COMPLIANCE_OFFICER):
        raise DomainError("only a compliance officer approves a smaller sanctions list", code="permission_denied",
                          http_status=403)
    with transaction.atomic():
        current = SanctionsList.objects.select_for_update().filter(is_current=True).first()
        held = _lock(SanctionsList, sanctions_list.pk)
        if not held.held:
            raise InvalidTransition(f"sanctions list {held.id} is not held for approval")
        roles.assert_four_eyes(initiator_id=held.imported_by_id, approver_id=approved_by.id)
        if current is not None and current.pk != held.compared_to_id:
            raise Conflict(f"list {current.id} became current after list {held.id} was held; import again",
                           code="sanctions_list_superseded")
        SanctionsList.objects.filter(is_current=True).update(is_current=False)
        held.held, held.is_current = False, True
        held.shrink_approved_by, held.shrink_approved_at, held.shrink_approval_reason = (
            approved_by, timezone.now(), reason)
        held.save()
        _record([_list_imported_event(held, address_count=SanctionsAddress.objects.filter(
                    entry__sanctions_list=held).count())], actor=_actor(approved_by))
    rescreen_all(trigger=f"list_import:{held.id}")
    return held


def _list_imported_event(sanctions_list: SanctionsList, *, address_count: int) -> NewEvent:
    previous = sanctions_list.compared_to
    return NewEvent(stream=f"sanctions-list-{sanctions_list.id}", type="compliance.sanctions_list_imported",
                    data={"list_id": sanctions_list.id, "source": sanctions_list.source,
                          "sha256": sanctions_list.sha256, "publish_date": _iso(sanctions_list.publish_date),
                          "record_count": sanctions_list.record_count, "entry_count": sanctions_list.entry_count,
                          "address_count": address_count, "imported_by": sanctions_list.imported_by_id,
                          "previous_entry_count": previous.entry_count if previous else None,
                          "shrink_approved_by": sanctions_list.shrink_approved_by_id,
                          "shrink_approval_reason": sanctions_list.shrink_approval_reason or None})


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def rescreen_all(*, trigger: str) -> int:
    count = 0
    for participant in Participant.objects.all().iterator():
        participant_screen(participant=participant, trigger=trigger)
        count += 1
    for wallet in Wallet.objects.all().iterator():
        wallet_screen(wallet=wallet, trigger=trigger)
        count += 1
    return count


def participant_screen(*, participant: Participant, trigger: str) -> ScreeningResult | None:
    current = SanctionsList.objects.filter(is_current=True).first()
    if current is None:
        return None
    threshold = screening.name_threshold()
    matches = screening.screen_name(sanctions_list=current, name=participant.legal_name, threshold=threshold)
    return _screening_outcome(participant=participant, wallet=None, sanctions_list=current,
                              subject_type=ScreeningSubject.PARTICIPANT, value=participant.legal_name,
                              matches=matches, threshold=threshold, trigger=trigger)


def wallet_screen(*, wallet: Wallet, trigger: str) -> ScreeningResult | None:
    current = SanctionsList.objects.filter(is_current=True).first()
    if current is None:
        return None
    matches = screening.screen_address(sanctions_list=current, address=wallet.address)
    return _screening_outcome(participant=wallet.participant, wallet=wallet, sanctions_list=current,
                              subject_type=ScreeningSubject.WALLET, value=wallet.address, matches=matches,
                              threshold=screening.ADDRESS_THRESHOLD, trigger=trigger)


def _screening_outcome(*, participant, wallet, sanctions_list, subject_type, value, matches, threshold,
                       trigger) -> ScreeningResult:
    from decimal import Decimal

    best = max((Decimal(m["score"]) for m in matches), default=Decimal(0))
    with transaction.atomic():
        result = ScreeningResult.objects.create(
            subject_type=subject_type, participant=participant, wallet=wallet, sanctions_list=sanctions_list,
            screened_value=value, hit=bool(matches), best_score=best, threshold=threshold, matches=matches,
            trigger=trigger[:40])
        if not matches:
            return result
        uids = sorted({m["uid"] for m in matches})
        cases = ComplianceCase.objects.filter(participant=participant, wallet=wallet)
        if cases.filter(status__in=[CaseStatus.OPEN, CaseStatus.CONFIRMED]).exists():
            return result  # already held; one case per subject at a time
        for cleared in cases.filter(status=CaseStatus.CLEARED):
            previous = cleared.screening
            if previous.screened_value == value and set(uids) <= {m["uid"] for m in previous.matches}:
                return result  # the same match was already judged a false positive
        case = ComplianceCase.objects.create(
            participant=participant, wallet=wallet, screening=result,
            summary=f"{subject_type} {value!r} matched SDN entries {uids} (best score {best})")
        _set_hold(participant=participant, wallet=wallet, hold=True)
        _alert(kind="sanctions_hit", participant=participant, dedupe_key=f"case:{case.id}",
               message=f"Sanctions screening hit, case {case.id}: {case.summary}")
        _record([
            NewEvent(stream=f"case-{case.id}", type="compliance.screening_hit",
                     data={"case_id": case.id, "screening_id": result.id, "participant_id": participant.id,
                           "wallet_id": wallet.id if wallet else None, "subject_type": subject_type,
                           "screened_value": value, "best_score": str(best), "matched_uids": uids}),
            NewEvent(stream=f"participant-{participant.id}", type="compliance.sanctions_hold_changed",
                     data={"participant_id": participant.id, "wallet_id": wallet.id if wallet else None,
                           "hold": True, "case_id": case.id, "reason": "sanctions screening hit"}),
        ], actor="task:sanctions_screening")
    return result


def _set_hold(*, participant: Participant, wallet: Wallet | None, hold: bool) -> None:
    if wallet is None:
        Participant.objects.filter(pk=participant.pk).update(sanctions_hold=hold)
    else:
        Wallet.objects.filter(pk=wallet.pk).update(sanctions_hold=hold)


def case_decide(*, case: ComplianceCase, decided_by, decision: str, reason: str) -> ComplianceCase:
    """A compliance officer clears a case (false positive: the hold is lifted) or confirms it (true
    match: the participant or wallet stays blocked for good)."""
    reason = _require_reason(reason)
    if decision not in {CaseStatus.CLEARED, CaseStatus.CONFIRMED}:
        raise InvalidInput("decision is cleared or confirmed", code="invalid_decision")
    if not roles.user_has_role(decided_by, roles.COMPLIANCE_OFFICER):
        raise DomainError("only a compliance officer decides cases", code="permission_denied", http_status=403)
    with transaction.atomic():
        c = _lock(ComplianceCase, case.pk)
        if c.status != CaseStatus.OPEN:
            raise InvalidTransition(f"case {c.id} is already {c.status}")
        c.status, c.decided_by, c.decided_at, c.decision_reason = decision, decided_by, timezone.now(), reason
        c.save()
        events = [NewEvent(stream=f"case-{c.id}", type="compliance.case_decided",
                           data={"case_id": c.id, "participant_id": c.participant_id, "wallet_id": c.wallet_id,
                                 "decision": decision, "reason": reason})]
        if decision == CaseStatus.CLEARED:
            _set_hold(participant=c.participant, wallet=c.wallet, hold=False)
            events.append(NewEvent(stream=f"participant-{c.participant_id}", type="compliance.sanctions_hold_changed",
                                   data={"participant_id": c.participant_id, "wallet_id": c.wallet_id,
                                         "hold": False, "case_id": c.id, "reason": reason}))
        _record(events, actor=_actor(decided_by))
    return c
