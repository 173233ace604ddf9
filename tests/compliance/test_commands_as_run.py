"""`manage.py sanctions_import [path|URL]` and `manage.py api_key_issue --participant <id> --scope trade`,
run as the README prints them, each in a fresh process on committed data (see tests/subprocesses.py)."""

import base64
import json
from pathlib import Path

from django.test import Client

from compliance.models import ApiKey, SanctionsList
from tests.compliance import factories as f
from tests.subprocesses import describe, manage

SAMPLE = Path(__file__).resolve().parents[2] / "compliance" / "fixtures" / "sdn_sample.xml"


def test_sanctions_import_loads_the_list_rescreens_everyone_and_skips_an_unchanged_list(committed):
    flagged = f.make_participant(legal_name="Garantex Europe OÜ")
    assert not flagged.sanctions_hold  # no list yet

    imported = manage("sanctions_import", str(SAMPLE))
    assert imported.returncode == 0, describe(imported)
    current = SanctionsList.objects.get(is_current=True)
    assert imported.stdout.strip() == (f"imported list {current.id}: 4 entries, published 2025-11-14; "
                                       "re-screened everyone, 1 hit(s)")
    flagged.refresh_from_db()
    assert flagged.sanctions_hold

    unchanged = manage("sanctions_import", str(SAMPLE), "--if-changed")
    assert unchanged.returncode == 0, describe(unchanged)
    assert unchanged.stdout.strip() == "unchanged; nothing imported"
    assert SanctionsList.objects.count() == 1


def test_sanctions_import_of_a_missing_file_says_so_and_imports_nothing(committed, tmp_path):
    missing = manage("sanctions_import", str(tmp_path / "sdn.xml"))
    assert missing.returncode == 1, describe(missing)
    assert f"no such file: {tmp_path / 'sdn.xml'}" in missing.stderr
    assert not SanctionsList.objects.exists()


def test_api_key_issue_prints_working_credentials_once(committed):
    participant = f.make_participant()

    issued = manage("api_key_issue", "--participant", str(participant.pk), "--scope", "trade")
    assert issued.returncode == 0, describe(issued)
    printed = json.loads(issued.stdout)
    assert set(printed) == {"key_id", "secret", "signature_alg", "hmac_key"}
    key = ApiKey.objects.get(key_id=printed["key_id"])
    assert (key.participant_id, key.scope) == (participant.pk, "trade")
    assert printed["secret"] not in {key.secret_hash, key.hmac_key_encrypted}

    # The printed secrets are all a market maker needs to sign a request.
    credentials = f.Credentials(key_id=printed["key_id"], secret=printed["secret"],
                                signature_alg=printed["signature_alg"],
                                hmac_key=base64.urlsafe_b64decode(printed["hmac_key"] + "=" * (-len(printed["hmac_key"]) % 4)))
    headers = f.sign_request(credentials, "POST", "/api/v1/signature-check", b"{}")
    response = Client().post("/api/v1/signature-check", data=b"{}", content_type="application/json", headers=headers)
    assert response.status_code == 200, response.content
    assert response.json()["participant"] == participant.pk


def test_api_key_issue_for_an_unknown_participant_is_refused_and_issues_nothing(committed):
    refused = manage("api_key_issue", "--participant", "987654321", "--scope", "trade")
    assert refused.returncode == 1, describe(refused)
    assert "no participant 987654321" in refused.stderr
    assert not ApiKey.objects.exists()
