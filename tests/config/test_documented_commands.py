"""Every command the README tells someone to run works as printed. The make targets are run here; the
`manage.py` commands and the example client next to the app they belong to (tests/<app>/
test_commands_as_run.py). The last test reads the README, so a newly documented command without a test
fails the suite."""

from __future__ import annotations

import re
import shutil
import sys
import uuid

import pytest

from tests.conftest import ROOT
from tests.subprocesses import command_env, describe, run

CHAINS = ("ethereum", "arbitrum", "base")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_lint_passes_on_the_tree():
    lint = run(["make", "lint"])
    assert lint.returncode == 0, describe(lint)
    assert "All checks passed!" in lint.stdout


@needs_make
def test_make_stop_stops_the_embedded_postgres_redis_and_chains():  # the local Solana RPC included
    # Servers of its own, not the ones this suite runs on. Under the project rather than pytest's tmp_path:
    # run as root, the embedded server runs as another user, who cannot enter pytest's private directories.
    data_dir = ROOT / ".data" / f"make-stop-{uuid.uuid4().hex[:8]}"
    env = command_env(ISSUER_DATA_DIR=str(data_dir))
    embedded = [sys.executable, "-m", "config.embedded"]
    try:
        start = run([*embedded, "start"], env=env)
        assert start.returncode == 0, describe(start)
        assert run([*embedded, "status"], env=env).stdout.splitlines() == [
            "postgres: running", "redis: running", *(f"anvil {chain}: running" for chain in CHAINS),
            "solana: running"]

        stop = run(["make", "stop"], env=env)
        assert stop.returncode == 0, describe(stop)
        assert "embedded services stopped" in stop.stdout
        assert run([*embedded, "status"], env=env).stdout.splitlines() == [
            "postgres: stopped", "redis: stopped", *(f"anvil {chain}: stopped" for chain in CHAINS),
            "solana: stopped"]
    finally:
        run([*embedded, "stop"], env=env)
        shutil.rmtree(data_dir, ignore_errors=True)


# Each command the README documents, and the test that runs it as printed.
RUN_AS_PRINTED = {
    "manage.py migrate": "tests/config/test_two_roles.py::test_migrate_runs_as_the_owner_and_grants_the_application_role",
    "manage.py requests_stuck": "tests/mint_redeem/test_nothing_stuck.py::"
                                "test_the_command_finds_a_stuck_request_and_exits_nonzero",
    "manage.py ledger verify": "tests/ledger/test_commands_as_run.py::test_verify_exits_non_zero_and_names_a_tampered_event",
    "manage.py ledger rebuild": "tests/ledger/test_commands_as_run.py::"
                                "test_rebuild_check_exits_non_zero_on_a_tampered_projection_and_changes_nothing",
    "manage.py ledger export": "tests/ledger/test_commands_as_run.py::"
                               "test_export_writes_a_log_an_auditor_can_rehash_with_nothing_else",
    "manage.py ledger seal": "tests/ledger/test_crash.py::"
                             "test_writers_killed_mid_append_and_a_database_crash_leave_no_gap_no_duplicate",
    "manage.py custody_import_statement": "tests/custody/test_commands_as_run.py::"
                                          "test_a_statement_is_imported_once_and_reconciled_into_a_break",
    "manage.py custody_reconcile": "tests/custody/test_commands_as_run.py::"
                                   "test_a_statement_is_imported_once_and_reconciled_into_a_break",
    "manage.py sanctions_import": "tests/compliance/test_commands_as_run.py::"
                                  "test_sanctions_import_loads_the_list_rescreens_everyone_and_skips_an_unchanged_list",
    "manage.py api_key_issue": "tests/compliance/test_commands_as_run.py::"
                               "test_api_key_issue_prints_working_credentials_once",
    "manage.py sanctions_approve_shrink": "tests/compliance/test_commands_as_run.py::"
                                          "test_a_much_smaller_list_is_held_and_a_second_officer_approves_it",
    "manage.py secrets_reencrypt": "tests/compliance/test_commands_as_run.py::"
                                   "test_secrets_reencrypt_moves_every_secret_to_the_newest_key",
    "manage.py seed_demo": "tests/mint_redeem/test_commands_as_run.py::"
                           "test_seed_demo_under_the_production_profile_refuses_with_a_clear_error",
    "examples/mm_client.py products": "tests/mint_redeem/test_commands_as_run.py::"
                                      "test_the_example_client_lists_products_mints_and_follows_the_mint",
    "examples/mm_client.py mint": "tests/mint_redeem/test_commands_as_run.py::"
                                  "test_the_example_client_lists_products_mints_and_follows_the_mint",
    "examples/mm_client.py get": "tests/mint_redeem/test_commands_as_run.py::"
                                 "test_the_example_client_lists_products_mints_and_follows_the_mint",
    "examples/mm_client.py wallets": "tests/mint_redeem/test_commands_as_run.py::"
                                     "test_the_client_proves_a_wallet_mints_redeems_on_chain_and_registers_a_webhook",
    "examples/mm_client.py wallet": "tests/mint_redeem/test_commands_as_run.py::"  # wallet-add
                                    "test_the_client_proves_a_wallet_mints_redeems_on_chain_and_registers_a_webhook",
    "examples/mm_client.py follow": "tests/mint_redeem/test_commands_as_run.py::"
                                    "test_the_client_proves_a_wallet_mints_redeems_on_chain_and_registers_a_webhook",
    "examples/mm_client.py redeem": "tests/mint_redeem/test_commands_as_run.py::"
                                    "test_the_client_proves_a_wallet_mints_redeems_on_chain_and_registers_a_webhook",
    "examples/mm_client.py webhook": "tests/mint_redeem/test_commands_as_run.py::"  # webhook-add
                                     "test_the_client_proves_a_wallet_mints_redeems_on_chain_and_registers_a_webhook",
    "docs/screenshots.py": "tests/mint_redeem/test_screenshots.py::test_the_screenshot_script_takes_every_page_as_printed",
    "manage.py staff_totp_enroll": "tests/compliance/test_admin_sign_in.py::"
                                   "test_staff_totp_enroll_prints_a_uri_whose_codes_sign_in",
    "manage.py axes_reset_username": "tests/compliance/test_admin_sign_in.py::"
                                     "test_axes_reset_username_unlocks_a_locked_out_user",
    "make lint": "tests/config/test_documented_commands.py::test_make_lint_passes_on_the_tree",
    "-m ledger.verify_attestation": "tests/custody/test_commands_as_run.py::"
                                    "test_the_auditors_commands_verify_the_latest_attestation_as_printed",
    "bin/verify-attestation": "tests/custody/test_commands_as_run.py::"
                              "test_the_auditors_commands_verify_the_latest_attestation_as_printed",
    "make stop": "tests/config/test_documented_commands.py::test_make_stop_stops_the_embedded_postgres_redis_and_chains",
    "make run": "tests/config/test_devrun_output.py::test_make_run_starts_with_readable_logs_and_no_error",
}
# Documented, but not run by the suite, and why.
NOT_RUN = {
    "manage.py changepassword": "Django's own interactive command",
    "make test": "is this suite",
    "make bench": "takes minutes; speed targets live in bench/, not in timed tests",
    "make clean": "deletes .data/, where this suite's own database lives",
}


def documented_commands(readme: str) -> set[str]:
    commands = {f"manage.py {name}" for name in re.findall(r"manage\.py (ledger \w+|\w+)", readme)}
    commands |= {f"make {target}" for target in re.findall(r"(?:^|`)make (\w+)", readme, re.MULTILINE)}
    commands |= {f"examples/mm_client.py {name}" for name in re.findall(r"examples/mm_client\.py (\w+)", readme)}
    commands |= set(re.findall(r"(-m ledger\.verify_attestation|bin/verify-attestation) ", readme))
    commands |= set(re.findall(r"\.venv/bin/python (docs/\w+\.py)", readme))
    return commands


def test_every_command_the_readme_documents_has_a_test_that_runs_it():
    documented = documented_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"manage.py ledger verify", "make lint", "examples/mm_client.py mint"} <= documented  # the parser works
    assert documented == set(RUN_AS_PRINTED) | set(NOT_RUN), (
        f"documented without a test: {sorted(documented - set(RUN_AS_PRINTED) - set(NOT_RUN))}; "
        f"listed but no longer documented: {sorted((set(RUN_AS_PRINTED) | set(NOT_RUN)) - documented)}")
    for command, node in RUN_AS_PRINTED.items():
        path, name = node.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE), (
            f"{command}: {node} does not exist")
