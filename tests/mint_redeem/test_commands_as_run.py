"""The README's market-maker client, `examples/mm_client.py products | mint ... | get ...`, run as printed
in a fresh process against a live server on the test database (see tests/subprocesses.py); and
`manage.py seed_demo` refusing the production profile."""

import base64
import json
import sys

from mint_redeem.models import MintRequest
from tests.subprocesses import command_env, describe, manage, run


def mm_client(*args: str, credentials, base_url: str):
    return run([sys.executable, "examples/mm_client.py", "--credentials", str(credentials), *args],
               env=command_env(BASE_URL=base_url), timeout_s=60)


def test_the_example_client_lists_products_mints_and_follows_the_mint(committed, live_server, market, mm, tmp_path):
    # The file `make run` writes: the demo market makers' key id, secret and HMAC key (base64url).
    credentials = tmp_path / "demo-credentials.json"
    hmac_key = base64.urlsafe_b64encode(mm.credentials.hmac_key).decode().rstrip("=")
    credentials.write_text(json.dumps({"market_makers": [
        {"participant_id": mm.participant.pk, "key_id": mm.key_id, "secret": mm.secret, "hmac_key": hmac_key}]}))

    products = mm_client("products", credentials=credentials, base_url=live_server.url)
    assert products.returncode == 0, describe(products)
    status, body = products.stdout.split("\n", 1)
    assert status == "200"
    assert "AAPLx" in {p["symbol"] for p in json.loads(body)}

    mint = mm_client("mint", "AAPLx", "ethereum", "2.5", "cash", credentials=credentials, base_url=live_server.url)
    assert mint.returncode == 0, describe(mint)
    status, body = mint.stdout.split("\n", 1)
    assert status == "201"
    created = json.loads(body)
    record = MintRequest.objects.get(pk=created["id"])
    assert (record.participant_id, record.wallet_id, record.quantity_nano) == (
        mm.participant.pk, mm.wallets["ethereum"].pk, 2_500_000_000)

    followed = mm_client("get", f"/api/v1/mints/{created['id']}", credentials=credentials, base_url=live_server.url)
    assert followed.returncode == 0, describe(followed)
    status, body = followed.stdout.split("\n", 1)
    assert status == "200"
    assert json.loads(body)["state"] == record.state == "accepted"


def test_seed_demo_under_the_production_profile_refuses_with_a_clear_error(committed):
    production = command_env(ISSUER_ENV="production", SECRET_KEY="p" * 60,
                             FIELD_ENCRYPTION_KEYS="field-encryption-key-production-0123456789",
                             EVM_CHAINS="")  # production names each chain's node; none is needed here
    refused = manage("seed_demo", env=production)
    assert refused.returncode == 1, describe(refused)
    assert refused.stderr.strip() == ("CommandError: not_in_production: seed_demo (demo data) refuses to run under "
                                      "the production profile (ISSUER_ENV=production): it is for development and "
                                      "test only")
    from compliance.models import Participant

    assert not Participant.objects.exists()
