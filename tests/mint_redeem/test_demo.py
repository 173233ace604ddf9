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
