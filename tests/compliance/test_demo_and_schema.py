import json

import pytest

from compliance.demo import seed_demo
from compliance.models import ApiKey, Participant, Wallet
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_its_credentials_work(client, capsys):
    first = seed_demo()
    counts = (Participant.objects.count(), Wallet.objects.count(), ApiKey.objects.count())
    second = seed_demo()
    assert (Participant.objects.count(), Wallet.objects.count(), ApiKey.objects.count()) == counts
    assert first == second
    assert len(first["market_makers"]) == 2
    printed = capsys.readouterr()
    for mm in first["market_makers"]:
        assert mm["secret"] not in printed.out + printed.err
        participant = Participant.objects.get(pk=mm["participant_id"])
        assert participant.kyc_status == "approved"
        assert set(mm["wallets"]) == {"ethereum", "arbitrum", "base", "solana"}
        assert all(w.verified for w in participant.wallets.all())
        import base64

        creds = f.Credentials(key_id=mm["key_id"], secret=mm["secret"], signature_alg=mm["signature_alg"],
                              hmac_key=base64.urlsafe_b64decode(mm["hmac_key"] + "=" * (-len(mm["hmac_key"]) % 4)))
        key = f.new_wallet_key("base")
        body = json.dumps({"chain": "base", "address": f.wallet_address("base", key)}).encode()
        response = client.post("/api/v1/wallets", data=body, content_type="application/json",
                               headers=f.sign_request(creds, "POST", "/api/v1/wallets", body))
        assert response.status_code == 201, response.content


def test_the_openapi_schema_documents_the_market_maker_endpoints(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    for path in ["/api/v1/participant", "/api/v1/wallets", "/api/v1/wallets/{wallet_id}/challenge",
                 "/api/v1/wallets/{wallet_id}/verify"]:
        assert path in schema["paths"], path
    post = schema["paths"]["/api/v1/wallets"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in post["parameters"])
    assert "MarketMakerApiKey" in schema["components"]["securitySchemes"]


def test_compliance_events_verify_in_the_ledger():
    from ledger import integrity
    from ledger.models import Event

    seed_demo()
    types = set(Event.objects.filter(event_type__startswith="compliance.").values_list("event_type", flat=True))
    assert {"compliance.participant_created", "compliance.kyc_status_changed", "compliance.limits_changed",
            "compliance.wallet_registered", "compliance.wallet_verified", "compliance.api_key_created",
            "compliance.sanctions_list_imported"} <= types
    assert integrity.verify() == []
