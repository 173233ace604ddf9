"""The README's market-maker client, `examples/mm_client.py products | mint ... | get ...`, run as printed
in a fresh process against a live server on the test database (see tests/subprocesses.py); and
`manage.py seed_demo` refusing the production profile."""

import base64
import json
import sys

from mint_redeem.models import MintRequest
from tests.subprocesses import command_env, describe, manage, run


def mm_client(*args: str, credentials, base_url: str, timeout_s: float = 60):
    return run([sys.executable, "examples/mm_client.py", "--credentials", str(credentials), *args],
               env=command_env(BASE_URL=base_url), timeout_s=timeout_s)


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


def test_the_client_proves_a_wallet_mints_redeems_on_chain_and_registers_a_webhook(
        committed, celery_worker_process, live_server, evm_market, mm, operations, tmp_path, settings):
    """Each command the README prints for market makers, in a fresh process against a live server and
    a real worker: the redemption's tokens leave the wallet on chain, with the request's reference."""
    from chains.config import evm_chain_config
    from chains.evm import evm_chain, ref_bytes
    from chains.signers import redemption_vault
    from chains.tasks import watch_redemptions
    from mint_redeem import services
    from tests.compliance.factories import new_wallet_key

    from .conftest import holder_of

    credentials = tmp_path / "demo-credentials.json"
    hmac_key = base64.urlsafe_b64encode(mm.credentials.hmac_key).decode().rstrip("=")
    holder = holder_of(mm)  # the demo wallet's key, with gas money on the test chain
    credentials.write_text(json.dumps({"market_makers": [
        {"participant_id": mm.participant.pk, "key_id": mm.key_id, "secret": mm.secret, "hmac_key": hmac_key,
         "wallet_keys": {"ethereum": "0x" + bytes(mm.wallet_keys["ethereum"].key).hex()}}]}))
    rpc = f"ethereum={evm_chain_config('ethereum').rpc_url}"

    def client(*args):
        result = mm_client(*args, credentials=credentials, base_url=live_server.url, timeout_s=180)
        assert result.returncode == 0, describe(result)
        return result.stdout

    # A new wallet, registered and proved with its key (EIP-191 signature of the challenge).
    new_key = new_wallet_key("ethereum")
    key_file = tmp_path / "wallet.key"
    key_file.write_text("0x" + bytes(new_key.key).hex())
    status, body = client("wallet-add", "ethereum", "--key-file", str(key_file)).split("\n", 1)
    added = json.loads(body)
    assert status == "200" and added["verified"] and added["address"] == new_key.address
    assert any(w["address"] == new_key.address for w in json.loads(client("wallets").split("\n", 1)[1]))

    # A mint in kind: the operator records the shares, the worker mints on chain, the client follows it.
    status, body = client("mint", "AAPLx", "ethereum", "4", "in_kind").split("\n", 1)
    mint = json.loads(body)
    assert status == "201" and mint["state"] == "accepted"
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=mint["id"]), custodian_confirmation="BNY-9",
                                 user=operations)
    followed = client("follow", "mint", str(mint["id"]), "--wait", "minted", "--timeout", "120")
    assert followed.splitlines()[-1] == f"mint {mint['id']}: minted", followed
    evm = evm_chain("ethereum")
    assert evm.balance_of(evm_market.token, holder.address) == 4 * 10**18

    # A redemption: the client asks for it, then sends the tokens on chain with its reference itself.
    output = client("redeem", "AAPLx", "ethereum", "1.5", "in_kind", "--rpc", rpc)
    redemption_id = json.loads(output.split("\n", 1)[1].split("\ntokens sent")[0])["id"]
    assert f"with reference 0x{ref_bytes(f'redemption-{redemption_id}').hex()}" in output
    watch_redemptions.delay("ethereum")  # what the beat does every few seconds
    followed = client("follow", "redemption", str(redemption_id), "--wait", "burned", "--timeout", "120")
    assert followed.splitlines()[-1] == f"redemption {redemption_id}: burned", followed
    assert evm.balance_of(evm_market.token, holder.address) == 25 * 10**17
    assert evm.balance_of(evm_market.token, redemption_vault("ethereum")) == 0  # burned from the vault
    assert evm.ref_burned(evm_market.token, ref_bytes(f"redemption-{redemption_id}"))

    # A webhook endpoint: its signing secret is shown once.
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    status, body = client("webhook-add", "https://127.0.0.1:8443/issuer-hooks").split("\n", 1)
    assert status == "201" and json.loads(body)["secret"]


def test_the_client_retries_with_the_same_idempotency_key(committed, live_server, market, mm, tmp_path):
    """A POST that got no answer is sent again with the same key: the server runs it once."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("mm_client", ROOT / "examples" / "mm_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hmac_key = base64.urlsafe_b64encode(mm.credentials.hmac_key).decode().rstrip("=")
    client = module.Client({"key_id": mm.key_id, "secret": mm.secret, "hmac_key": hmac_key}, live_server.url,
                           log=lambda *a, **k: None, sleep=lambda s: None)
    sent = []
    original = client.session.send

    def lose_the_first_answer(request, **kwargs):
        response = original(request, **kwargs)  # the server ran it...
        sent.append(request.headers["Idempotency-Key"])
        if len(sent) == 1:
            raise module.requests.ConnectionError("connection reset")  # ...but the answer was lost
        return response

    client.session.send = lose_the_first_answer
    payload = {"product": "AAPLx", "chain": "ethereum", "quantity": "1", "wallet": mm.wallets["ethereum"].pk,
               "funding": "cash"}
    response = client.call("POST", "/api/v1/mints", payload)
    assert response.status_code == 201 and response.headers.get("Idempotent-Replayed") == "true"
    assert len(sent) == 2 and sent[0] == sent[1]
    assert MintRequest.objects.count() == 1


def test_the_client_proves_a_solana_wallet_and_redeems_with_a_transfer_and_its_memo(
        committed, celery_worker_process, live_server, solana_market, mm, operations, tmp_path):
    """The same commands on Solana: the wallet proved with an Ed25519 signature, the redemption's tokens
    sent by the client itself (transfer_checked to the redemption account + a Memo with the reference),
    read back from the local Solana RPC."""
    from solders.keypair import Keypair

    from chains.solana import solana_chain
    from chains.tasks import watch_redemptions
    from mint_redeem import services
    from mint_redeem.models import Redemption

    chain = solana_chain()
    credentials = tmp_path / "demo-credentials.json"
    hmac_key = base64.urlsafe_b64encode(mm.credentials.hmac_key).decode().rstrip("=")
    credentials.write_text(json.dumps({"market_makers": [
        {"participant_id": mm.participant.pk, "key_id": mm.key_id, "secret": mm.secret, "hmac_key": hmac_key,
         "wallet_keys": {"solana": str(mm.wallet_keys["solana"])}}]}))  # base58 keypair, as wallets export it

    def client(*args):
        result = mm_client(*args, credentials=credentials, base_url=live_server.url, timeout_s=180)
        assert result.returncode == 0, describe(result)
        return result.stdout

    # A new wallet, registered and proved with its key, given as solana-keygen writes it (a JSON array).
    new_key = Keypair()
    key_file = tmp_path / "id.json"
    key_file.write_text(json.dumps(list(bytes(new_key))))
    status, body = client("wallet-add", "solana", "--key-file", str(key_file)).split("\n", 1)
    added = json.loads(body)
    assert status == "200" and added["verified"] and added["address"] == str(new_key.pubkey())

    status, body = client("mint", "AAPLx", "solana", "4", "in_kind").split("\n", 1)
    mint = json.loads(body)
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=mint["id"]), custodian_confirmation="BNY-S9",
                                 user=operations)
    followed = client("follow", "mint", str(mint["id"]), "--wait", "minted", "--timeout", "120")
    assert followed.splitlines()[-1] == f"mint {mint['id']}: minted", followed
    owner = mm.wallets["solana"].address
    assert chain.balance(owner, solana_market.mint) == 4 * 10**9

    output = client("redeem", "AAPLx", "solana", "1.5", "in_kind", "--rpc", f"solana={chain.config.rpc_url}")
    redemption_id = json.loads(output.split("\n", 1)[1].split("\ntokens sent")[0])["id"]
    signature = output.strip().rsplit(": ", 1)[1]
    assert f"with reference redemption-{redemption_id}: " in output
    watch_redemptions.delay("solana")  # what the beat does every few seconds
    followed = client("follow", "redemption", str(redemption_id), "--wait", "burned", "--timeout", "120")
    assert followed.splitlines()[-1] == f"redemption {redemption_id}: burned", followed
    assert Redemption.objects.get(pk=redemption_id).deposit_tx == signature  # the client's own transaction
    assert chain.balance(owner, solana_market.mint) == 25 * 10**8
    assert chain.supply(solana_market.mint)[0] == 25 * 10**8  # 1.5 burned from the redemption account
