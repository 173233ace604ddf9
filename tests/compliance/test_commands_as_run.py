"""`manage.py sanctions_import --user <username> [path|https URL]`, `manage.py sanctions_approve_shrink`,
`manage.py secrets_reencrypt` and `manage.py api_key_issue --participant <id> --scope trade`, run as the
README prints them, each in a fresh process on committed data (see tests/subprocesses.py)."""

import base64
import json
from pathlib import Path

from django.test import Client

from compliance.models import ApiKey, SanctionsList
from tests.compliance import factories as f
from tests.subprocesses import command_env, describe, manage

SAMPLE = Path(__file__).resolve().parents[2] / "compliance" / "fixtures" / "sdn_sample.xml"


def test_sanctions_import_loads_the_list_rescreens_everyone_and_skips_an_unchanged_list(committed):
    flagged = f.make_participant(legal_name="Garantex Europe OÜ")
    assert not flagged.sanctions_hold  # no list yet
    officer = f.make_staff("compliance_officer")

    imported = manage("sanctions_import", "--user", officer.username, str(SAMPLE))
    assert imported.returncode == 0, describe(imported)
    current = SanctionsList.objects.get(is_current=True)
    assert imported.stdout.strip() == (f"imported list {current.id}: 4 entries, published 2025-11-14; "
                                       "re-screened everyone, 1 hit(s)")
    flagged.refresh_from_db()
    assert flagged.sanctions_hold

    assert current.imported_by == officer
    unchanged = manage("sanctions_import", "--user", officer.username, str(SAMPLE), "--if-changed")
    assert unchanged.returncode == 0, describe(unchanged)
    assert unchanged.stdout.strip() == "unchanged; nothing imported"
    assert SanctionsList.objects.count() == 1


def test_sanctions_import_of_a_missing_file_says_so_and_imports_nothing(committed, tmp_path):
    officer = f.make_staff("compliance_officer")
    missing = manage("sanctions_import", "--user", officer.username, str(tmp_path / "sdn.xml"))
    assert missing.returncode == 1, describe(missing)
    assert f"no such file: {tmp_path / 'sdn.xml'}" in missing.stderr
    assert not SanctionsList.objects.exists()


def test_a_much_smaller_list_is_held_and_a_second_officer_approves_it(committed, tmp_path):
    alice, bob = f.make_staff("compliance_officer"), f.make_staff("compliance_officer")
    assert manage("sanctions_import", "--user", alice.username, str(SAMPLE)).returncode == 0
    smaller = tmp_path / "sdn.xml"
    text = SAMPLE.read_text(encoding="utf-8")
    start = text.index("<sdnEntry>\n    <uid>32524</uid>")
    text = text[:start] + text[text.index("</sdnEntry>", start) + len("</sdnEntry>"):]
    smaller.write_text(text.replace("<Record_Count>4</Record_Count>", "<Record_Count>3</Record_Count>"))

    held = manage("sanctions_import", "--user", alice.username, str(smaller))
    assert held.returncode == 1, describe(held)
    held_list = SanctionsList.objects.get(held=True)
    assert (f"sanctions_list_shrunk: the new list has 3 entries, fewer than 90% of the current list's 4; it is "
            f"held as list {held_list.id}") in held.stderr

    same_person = manage("sanctions_approve_shrink", str(held_list.id), "--user", alice.username, "--reason", "x")
    assert same_person.returncode == 1 and "four_eyes_violation" in same_person.stderr, describe(same_person)
    approved = manage("sanctions_approve_shrink", str(held_list.id), "--user", bob.username,
                      "--reason", "Garantex delisted on the publish date")
    assert approved.returncode == 0, describe(approved)
    assert approved.stdout.startswith(f"list {held_list.id} is current: 3 entries, imported by {alice.username}, "
                                      f"approved by {bob.username}")
    assert SanctionsList.objects.get(is_current=True).pk == held_list.pk


def test_secrets_reencrypt_moves_every_secret_to_the_newest_key(committed):
    key_a, key_b = "field-encryption-key-A-0123456789abcdef", "field-encryption-key-B-0123456789abcdef"
    written = manage("api_key_issue", "--participant", str(f.make_participant().pk), "--scope", "trade",
                     env=command_env(FIELD_ENCRYPTION_KEYS=key_a))
    assert written.returncode == 0, describe(written)

    rotated = manage("secrets_reencrypt", env=command_env(FIELD_ENCRYPTION_KEYS=f"{key_b},{key_a}"))
    assert rotated.returncode == 0, describe(rotated)
    assert rotated.stdout.strip() == "re-encrypted 1 secret(s) with the newest key; 0 already were"
    again = manage("secrets_reencrypt", env=command_env(FIELD_ENCRYPTION_KEYS=key_b))
    assert again.returncode == 0, describe(again)
    assert again.stdout.strip() == "re-encrypted 0 secret(s) with the newest key; 1 already were"
    printed = json.loads(written.stdout)
    assert printed["secret"] not in again.stdout + again.stderr + rotated.stdout + rotated.stderr


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
