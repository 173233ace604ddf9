"""Demo data for `make run`: staff users, the sample SDN list, and two approved market makers with
verified wallets on every chain. Idempotent. Secrets are derived from SECRET_KEY (so a re-run returns
the same credentials) and are returned to the caller, never printed or logged here."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from compliance import roles, services
from compliance.models import (
    EVM_CHAINS,
    ApiKey,
    ApiScope,
    Chain,
    Participant,
    SanctionsList,
    SignatureAlgorithm,
    Wallet,
)
from compliance.validation import lei_with_check_digits
from config.profiles import refuse_in_production

SAMPLE_SDN = Path(__file__).parent / "fixtures" / "sdn_sample.xml"

DEMO_MARKET_MAKERS = [
    {"slug": "northbridge", "legal_name": "Northbridge Liquidity Partners LLC", "lei_prefix": "5493001KJTIIGC8Y1R",
     "jurisdiction": "US", "contact_name": "Dana Whitfield", "contact_email": "ops@northbridge.example"},
    {"slug": "kestrel", "legal_name": "Kestrel Markets B.V.", "lei_prefix": "724500VKKSH9QOLTFR",
     "jurisdiction": "NL", "contact_name": "Joris van Dijk", "contact_email": "desk@kestrel.example"},
]
# An applicant whose name is close to an entry of the sample SDN list: onboarding screens it, and the
# hit opens the compliance case the demo shows (open until a compliance officer decides it).
FLAGGED_APPLICANT = {"legal_name": "Garantex Europe OÜ", "lei_prefix": "894500GARANTEXDEMO", "jurisdiction": "EE",
                     "contact_name": "Applicant desk", "contact_email": "onboarding@garantex-europe.example"}


def _derive(label: str) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), f"compliance-demo:{label}".encode(), hashlib.sha256).digest()


def _staff(username: str, role: str):
    user = get_user_model().objects.filter(username=username).first()
    return user or services.staff_user_create(username=username, role=role, email=f"{username}@issuer.example")


def wallet_key(slug: str, chain: str):
    """A demo market maker's wallet key (derived from SECRET_KEY): it signs its wallet proofs and, in the
    demo's activity and examples/mm_client.py, its own on-chain transfers."""
    seed = _derive(f"wallet:{slug}:{chain}")
    if chain in EVM_CHAINS:
        from eth_account import Account

        return Account.from_key(seed)
    from solders.keypair import Keypair

    return Keypair.from_seed(seed)


def _sign(key, chain: str, message: str) -> str:
    if chain in EVM_CHAINS:
        from eth_account.messages import encode_defunct

        return "0x" + key.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")
    return str(key.sign_message(message.encode()))


def seed_demo() -> dict:
    """Returns {"market_makers": [{"participant_id", "legal_name", "key_id", "secret", "hmac_key",
    "signature_alg", "wallets": {chain: address}, "wallet_keys": {chain: private key}}],
    "flagged_applicant": legal name}."""
    refuse_in_production("compliance demo seeding")
    ops = _staff("demo-operations", roles.OPERATIONS)
    officer = _staff("demo-compliance", roles.COMPLIANCE_OFFICER)
    _staff("demo-approver", roles.APPROVER)
    _staff("demo-auditor", roles.AUDITOR)
    if not SanctionsList.objects.filter(is_current=True).exists():
        services.sanctions_list_import(source=str(SAMPLE_SDN.relative_to(settings.BASE_DIR)),
                                       content=SAMPLE_SDN.read_bytes(), imported_by=officer)
    out = []
    for spec in DEMO_MARKET_MAKERS:
        with transaction.atomic():
            out.append(_seed_market_maker(spec, ops=ops, officer=officer))
    flagged = _seed_flagged_applicant(ops=ops)
    return {"market_makers": out, "flagged_applicant": flagged.legal_name}


@transaction.atomic
def _seed_flagged_applicant(*, ops) -> Participant:
    lei = lei_with_check_digits(FLAGGED_APPLICANT["lei_prefix"])
    participant = Participant.objects.filter(lei=lei).first()
    if participant is None:  # screened on creation: the sample list's hit opens a case
        participant = services.participant_create(
            legal_name=FLAGGED_APPLICANT["legal_name"], lei=lei, jurisdiction=FLAGGED_APPLICANT["jurisdiction"],
            created_by=ops, contact_name=FLAGGED_APPLICANT["contact_name"],
            contact_email=FLAGGED_APPLICANT["contact_email"])
    return participant


def _seed_market_maker(spec: dict, *, ops, officer) -> dict:
    lei = lei_with_check_digits(spec["lei_prefix"])
    participant = Participant.objects.filter(lei=lei).first()
    if participant is None:
        participant = services.participant_create(
            legal_name=spec["legal_name"], lei=lei, jurisdiction=spec["jurisdiction"], created_by=ops,
            contact_name=spec["contact_name"], contact_email=spec["contact_email"], aml_risk="low")
    if participant.kyc_status != "approved":
        participant = services.participant_kyc_approve(
            participant=participant, approved_by=officer, expires_on=timezone.localdate() + timedelta(days=365),
            review_on=timezone.localdate() + timedelta(days=180), reason="demo onboarding: documents verified")
    if participant.max_request_cents == 0:
        participant = services.participant_limits_set(
            participant=participant, min_request_cents=100_00, max_request_cents=5_000_000_00,
            daily_limit_cents=25_000_000_00, decided_by=officer, reason="demo limits")
    username = f"mm-{spec['slug']}-api"
    user = get_user_model().objects.filter(username=username).first() or services.participant_user_create(
        participant=participant, username=username, email=spec["contact_email"])
    secret = base64.urlsafe_b64encode(_derive(f"api-secret:{spec['slug']}")).decode().rstrip("=")
    hmac_raw = _derive(f"api-hmac:{spec['slug']}")
    key = ApiKey.objects.filter(participant=participant, label="demo", revoked_at__isnull=True).first()
    if key is not None and key.secret_hash != services.hash_secret(secret):
        # SECRET_KEY changed since the last seed: the stored key can no longer be handed out.
        services.api_key_revoke(api_key=key, revoked_by=ops, reason="demo secret rotated")
        key = None
    if key is None:
        key, _ = services.api_key_create(user=user, participant=participant, scope=ApiScope.TRADE,
                                         signature_alg=SignatureAlgorithm.HMAC_SHA256, created_by=ops, label="demo",
                                         secret=secret, hmac_key_raw=hmac_raw)
    wallets, wallet_keys = {}, {}
    for chain in Chain.values:
        wkey = wallet_key(spec["slug"], chain)
        address = str(wkey.address) if chain in EVM_CHAINS else str(wkey.pubkey())
        wallet = Wallet.objects.filter(chain=chain, address=address).first() or services.wallet_register(
            participant=participant, chain=chain, address=address, label="demo", actor=f"user:{ops.id}")
        if not wallet.verified:
            challenge = services.wallet_challenge_issue(wallet=wallet)
            services.wallet_verify(wallet=wallet, signature=_sign(wkey, chain, challenge.message),
                                   actor=f"participant:{participant.id}")
        wallets[chain] = address
        # The market maker's own key: examples/mm_client.py redeems with it (hex on EVM chains; on
        # Solana the keypair's base58, as wallets export it).
        wallet_keys[chain] = "0x" + bytes(wkey.key).hex() if chain in EVM_CHAINS else str(wkey)
    return {"participant_id": participant.id, "legal_name": participant.legal_name, "key_id": key.key_id,
            "secret": secret, "hmac_key": base64.urlsafe_b64encode(hmac_raw).decode().rstrip("="),
            "signature_alg": key.signature_alg, "wallets": wallets, "wallet_keys": wallet_keys}
