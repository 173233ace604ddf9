import json

import pytest
from django.utils import timezone

from compliance import services
from compliance.models import Chain, WalletChallenge, WalletStatus
from compliance.validation import InvalidInput
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db


def post(client, mm, path, payload=None, **kw):
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = f.sign_request(mm.credentials, "POST", path, body, **kw)
    return client.post(path, data=body, content_type="application/json", headers=headers)


def get(client, mm, path):
    return client.get(path, headers=f.sign_request(mm.credentials, "GET", path))


@pytest.mark.parametrize("chain", [Chain.ETHEREUM, Chain.BASE, Chain.SOLANA])
def test_register_challenge_and_verify_over_the_api_with_real_signatures(client, chain):
    mm = f.make_market_maker(chains=())
    key = f.new_wallet_key(chain)
    address = f.wallet_address(chain, key)

    created = post(client, mm, "/api/v1/wallets", {"chain": chain, "address": address})
    assert created.status_code == 201, created.content
    wallet_id = created.json()["id"]
    assert created.json()["status"] == "pending" and created.json()["verified"] is False

    challenge = post(client, mm, f"/api/v1/wallets/{wallet_id}/challenge")
    assert challenge.status_code == 201, challenge.content
    message = challenge.json()["message"]
    assert address in message and str(mm.participant.id) in message

    verified = post(client, mm, f"/api/v1/wallets/{wallet_id}/verify",
                    {"signature": f.sign_challenge(chain, key, message)})
    assert verified.status_code == 200, verified.content
    assert verified.json()["verified"] is True

    listed = get(client, mm, "/api/v1/wallets")
    assert [w["address"] for w in listed.json()] == [address]


@pytest.mark.parametrize("chain", [Chain.ARBITRUM, Chain.SOLANA])
def test_a_signature_by_another_key_or_over_another_message_is_refused(chain):
    participant = f.make_participant()
    key = f.new_wallet_key(chain)
    wallet = services.wallet_register(participant=participant, chain=chain, address=f.wallet_address(chain, key),
                                      actor="system")
    challenge = services.wallet_challenge_issue(wallet=wallet)
    other = f.new_wallet_key(chain)
    for signature in [f.sign_challenge(chain, other, challenge.message),
                      f.sign_challenge(chain, key, challenge.message + " tampered"), "0xdeadbeef", "not-base58-0OIl"]:
        with pytest.raises(Exception) as err:
            services.wallet_verify(wallet=wallet, signature=signature, actor="system")
        assert err.value.code == "invalid_wallet_signature"
    wallet.refresh_from_db()
    assert wallet.status == WalletStatus.PENDING


def test_an_expired_or_used_challenge_does_not_verify():
    participant = f.make_participant()
    key = f.new_wallet_key(Chain.ETHEREUM)
    wallet = services.wallet_register(participant=participant, chain=Chain.ETHEREUM,
                                      address=f.wallet_address(Chain.ETHEREUM, key), actor="system")
    challenge = services.wallet_challenge_issue(wallet=wallet)
    WalletChallenge.objects.filter(pk=challenge.pk).update(expires_at=timezone.now())
    with pytest.raises(Exception) as err:
        services.wallet_verify(wallet=wallet, signature=f.sign_challenge(Chain.ETHEREUM, key, challenge.message),
                               actor="system")
    assert err.value.code == "challenge_expired"


def test_addresses_are_validated_per_chain():
    participant = f.make_participant()
    key = f.new_wallet_key(Chain.ETHEREUM)
    checksummed = f.wallet_address(Chain.ETHEREUM, key)
    cases = [
        (Chain.ETHEREUM, checksummed.lower(), "address_not_checksummed"),
        (Chain.ETHEREUM, checksummed[:-1] + ("A" if checksummed[-1] != "A" else "B"), "address_not_checksummed"),
        (Chain.ETHEREUM, "0x1234", "invalid_address"),
        (Chain.SOLANA, "0OIl" + "1" * 40, "invalid_address"),
        (Chain.SOLANA, "3yZe7d", "invalid_address"),  # valid base58, not 32 bytes
        ("bitcoin", checksummed, "invalid_chain"),
    ]
    for chain, address, code in cases:
        with pytest.raises(InvalidInput) as err:
            services.wallet_register(participant=participant, chain=chain, address=address, actor="system")
        assert err.value.code == code, (chain, address)


def test_one_address_belongs_to_one_participant(client):
    a = f.make_market_maker(chains=(Chain.SOLANA,))
    b = f.make_market_maker(chains=())
    taken = a.wallets[Chain.SOLANA].address
    response = post(client, b, "/api/v1/wallets", {"chain": "solana", "address": taken})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "wallet_already_registered"


def test_freeze_and_unfreeze_need_reasons_and_are_recorded():
    from ledger.selectors import read_stream

    mm = f.make_market_maker(chains=(Chain.ETHEREUM,))
    officer = f.make_staff("compliance_officer")
    wallet = mm.wallets[Chain.ETHEREUM]
    with pytest.raises(InvalidInput):
        services.wallet_freeze(wallet=wallet, decided_by=officer, reason=" ")
    services.wallet_freeze(wallet=wallet, decided_by=officer, reason="court order 123")
    services.wallet_unfreeze(wallet=wallet, decided_by=officer, reason="order lifted")
    events = [(e.type, e.data.get("reason"), e.metadata["actor"]) for e in read_stream(stream=f"wallet-{wallet.id}")]
    assert ("compliance.wallet_frozen", "court order 123", f"user:{officer.id}") in events
    assert ("compliance.wallet_unfrozen", "order lifted", f"user:{officer.id}") in events
