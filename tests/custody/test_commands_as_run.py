"""`manage.py custody_import_statement FILE` and `manage.py custody_reconcile`, run as the README prints
them, each in a fresh process on committed data (see tests/subprocesses.py)."""

from datetime import timedelta

from django.utils import timezone

from custody import services
from custody.models import ReconciliationBreak, ReconciliationRun, Statement
from tests.custody.statement_files import semt002
from tests.subprocesses import describe, manage

NANO = 10**9


def test_a_statement_is_imported_once_and_reconciled_into_a_break(committed, account, custodian, aapl, product,
                                                                   tmp_path):
    services.shares_receive_in_kind(custodian=custodian, security=aapl, quantity_nano=10 * NANO,
                                    from_account="participant/1/shares", reference="r1",
                                    custodian_confirmation="C-r1", actor="user:1")
    as_of = timezone.now() + timedelta(seconds=1)
    path = tmp_path / "safe-0001.xml"
    path.write_bytes(semt002(account="SAFE-0001", statement_id="STMT-1", as_of=as_of.isoformat(),
                             holdings=[("US0378331005", "9.5")], datetime_=True))

    first = manage("custody_import_statement", str(path))
    assert first.returncode == 0, describe(first)
    assert first.stdout.startswith("imported statement STMT-1 of account SAFE-0001 as of "), describe(first)
    assert first.stdout.rstrip().endswith("(1 holdings)")
    again = manage("custody_import_statement", str(path))
    assert again.returncode == 0, describe(again)
    assert again.stdout.startswith("already imported, nothing changed: statement STMT-1 "), describe(again)
    assert Statement.objects.count() == 1

    reconcile = manage("custody_reconcile")
    assert reconcile.returncode == 0, describe(reconcile)
    found = ReconciliationBreak.objects.get()
    assert reconcile.stdout.splitlines() == [
        f"reconciliation {ReconciliationRun.objects.get().id}: 1 positions checked, 1 new break(s), 0 cleared",
        f"  open break {found.id}: bny AAPL expected {10 * NANO} reported {9_500_000_000} (-500000000) "
        "PAUSES MINTING",
    ], describe(reconcile)


def test_a_missing_or_malformed_statement_is_refused_with_a_message_and_imports_nothing(committed, account,
                                                                                         tmp_path):
    missing = manage("custody_import_statement", str(tmp_path / "nothing.xml"))
    assert missing.returncode == 1, describe(missing)
    assert "nothing.xml: no such file" in missing.stderr

    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(b"<?xml version='1.0'?><Document><NotAStatement/></Document>")
    malformed = manage("custody_import_statement", str(garbage))
    assert malformed.returncode == 1, describe(malformed)
    assert malformed.stderr.startswith("CommandError: "), describe(malformed)
    assert "Traceback" not in malformed.stderr
    assert not Statement.objects.exists()


def test_the_auditors_commands_verify_the_latest_attestation_as_printed(committed, registered, live_server, tmp_path):
    """The README's Auditors block, line by line as printed, against a live server (its address swapped
    for the test server's), from a directory that holds only what the README assumes (.venv, manage.py)."""
    import re
    import subprocess

    from custody.attestations import attestation_issue
    from tests.conftest import ROOT
    from tests.subprocesses import command_env

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"Check one yourself.*?\n```\n(.*?)\n```", readme, re.DOTALL).group(1)
    lines = block.splitlines()
    assert [line.split()[0] for line in lines] == ["curl", "curl", ".venv/bin/python", ".venv/bin/python",
                                                   ".venv/bin/verify-attestation"]
    row = attestation_issue(actor="user:1")
    for name in (".venv", "manage.py"):
        (tmp_path / name).symlink_to(ROOT / name)
    for line in lines:
        command = line.replace("http://127.0.0.1:8000", live_server.url)
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=command_env(), capture_output=True,
                                text=True, timeout=180, check=False)
        assert result.returncode == 0, f"{line}\n{describe(result)}"
        if "verify" in line:
            assert f"signature OK: key {row.key_id}" in result.stdout
    assert f"log OK: hash chain to event #{row.head_position}" in result.stdout
    assert (tmp_path / "attestation.json").read_text() == row.document

    # The same command on a tampered document fails and says why.
    (tmp_path / "attestation.json").write_text(row.document.replace('"format"', '"formaT"'))
    result = subprocess.run(["bash", "-c", lines[-1]], cwd=tmp_path, env=command_env(), capture_output=True,
                            text=True, timeout=180, check=False)
    assert result.returncode == 1 and "signature does not verify" in result.stderr
