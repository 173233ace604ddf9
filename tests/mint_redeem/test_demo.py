import json

from django.core.management import call_command

from mint_redeem.models import ProductTerms


def test_seed_demo_is_idempotent_and_keeps_secrets_out_of_the_console(db, capsys, settings, tmp_path):
    settings.DEMO_CREDENTIALS_FILE = tmp_path / "demo-credentials.json"
    CREDENTIALS_FILE = settings.DEMO_CREDENTIALS_FILE  # noqa: N806
    call_command("seed_demo")
    call_command("seed_demo")
    printed = capsys.readouterr().out
    assert ProductTerms.objects.count() >= 5
    credentials = json.loads(CREDENTIALS_FILE.read_text())["market_makers"]
    assert credentials and all(mm["secret"] not in printed for mm in credentials)
    assert oct(CREDENTIALS_FILE.stat().st_mode & 0o777) == "0o600"


def test_seed_demo_deploys_each_demo_token_once_and_records_its_address(  # EVM tokens and Solana mints
        db, settings, tmp_path):
    from chains.evm import evm_chain
    from chains.solana import solana_chain
    from custody.models import ChainDeployment
    from ledger.models import Event

    settings.DEMO_CREDENTIALS_FILE = tmp_path / "demo-credentials.json"
    call_command("seed_demo")
    evm = ChainDeployment.objects.filter(chain__in=list(settings.EVM_CHAINS))
    first = dict(evm.values_list("pk", "address"))
    assert first and all(first.values())
    for deployment in evm:
        chain = evm_chain(deployment.chain)
        assert chain.w3.eth.get_code(chain.w3.to_checksum_address(deployment.address))  # a contract is there
    solana = ChainDeployment.objects.filter(chain="solana")
    mints = dict(solana.values_list("pk", "address"))
    assert mints and all(solana_chain().decimals(address) == 9 for address in mints.values())  # Token-2022 mints
    call_command("seed_demo")
    assert dict(evm.values_list("pk", "address")) == first  # never deployed twice, never changed
    assert dict(solana.values_list("pk", "address")) == mints
    assert Event.objects.filter(event_type="custody.deployment_address_set").count() == len(first) + len(mints)


def test_demo_seeding_refuses_the_production_profile_and_creates_nothing(db, settings, tmp_path):
    import pytest
    from django.core.management import CommandError

    from compliance import demo as compliance_demo
    from compliance.models import Participant
    from config.profiles import NotInProduction
    from custody import demo as custody_demo
    from custody.models import Security

    settings.ISSUER_ENV = "production"
    settings.DEMO_CREDENTIALS_FILE = tmp_path / "demo-credentials.json"
    with pytest.raises(CommandError) as refused:
        call_command("seed_demo")
    assert str(refused.value) == ("not_in_production: seed_demo (demo data) refuses to run under the production "
                                  "profile (ISSUER_ENV=production): it is for development and test only")
    for app_seed in (compliance_demo.seed_demo, custody_demo.seed_demo):  # each app's own seed, called directly
        with pytest.raises(NotInProduction):
            app_seed()
    assert not ProductTerms.objects.exists() and not Participant.objects.exists() and not Security.objects.exists()
    assert not settings.DEMO_CREDENTIALS_FILE.exists()
