from pathlib import Path

import pytest
from django.core.management import call_command

from compliance import gates, services
from compliance.models import (
    CaseStatus,
    Chain,
    ComplianceAlert,
    ComplianceCase,
    SanctionsAddress,
    SanctionsList,
    ScreeningResult,
)
from compliance.validation import InvalidInput
from ledger.selectors import read_stream
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db
SAMPLE = Path(__file__).resolve().parents[2] / "compliance" / "fixtures" / "sdn_sample.xml"


def import_sample():
    return services.sanctions_list_import(source=str(SAMPLE), content=SAMPLE.read_bytes())


def test_the_sample_list_parses_in_the_published_format():
    imported = import_sample()
    assert imported.is_current and imported.entry_count == 4 and str(imported.publish_date) == "2025-11-14"
    lazarus = imported.entries.get(uid=23036)
    assert lazarus.programs == ["DPRK3", "CYBER2"]
    assert {n.name for n in lazarus.names.all()} == {"LAZARUS GROUP", "HIDDEN COBRA", "GUARDIANS OF PEACE",
                                                     "WHOIS TEAM"}
    assert lazarus.names.get(name="WHOIS TEAM").weak
    currencies = {(a.currency, a.entry.uid) for a in SanctionsAddress.objects.filter(entry__sanctions_list=imported)}
    assert ("ETH", 23036) in currencies and ("XBT", 32524) in currencies and ("SOL", 30517) in currencies
    # Non-currency ids ("Registration Number", "Website", ...) are not addresses.
    assert len(currencies) == 5


def test_a_participant_name_close_to_an_sdn_name_is_a_hit_that_blocks_and_opens_a_case():
    import_sample()
    mm = f.make_market_maker(chains=(Chain.ETHEREUM,), legal_name="Garantex Europe OÜ")
    mm.participant.refresh_from_db()
    assert mm.participant.sanctions_hold
    case = ComplianceCase.objects.get(participant=mm.participant, wallet=None)
    assert case.status == CaseStatus.OPEN
    result = case.screening
    assert result.hit and result.best_score >= result.threshold
    assert result.matches[0]["uid"] == 32524
    with pytest.raises(gates.ComplianceRefusal) as err:
        gates.assert_may_transact(participant=mm.participant, wallet=mm.wallets[Chain.ETHEREUM],
                                  notional_cents=1_000_00)
    assert err.value.code == "participant_blocked"
    assert ComplianceAlert.objects.filter(kind="sanctions_hit", participant=mm.participant).exists()
    assert [e.type for e in read_stream(stream=f"case-{case.id}")] == ["compliance.screening_hit"]


def test_aliases_match_and_weak_aliases_and_unrelated_names_do_not():
    import_sample()
    assert f.make_participant(legal_name="Hidden Cobra Ltd").sanctions_hold
    assert not f.make_participant(legal_name="Whois Team").sanctions_hold
    clean = f.make_participant(legal_name="Lazard Trading Group")
    assert not clean.sanctions_hold
    assert ScreeningResult.objects.filter(participant=clean, hit=False).exists()


def test_an_address_on_the_list_is_a_hit_by_exact_match_whatever_its_case():
    import_sample()
    participant = f.make_participant()
    # The list carries this ETH address in EIP-55 form; a lower-case listing would match just the same.
    wallet = services.wallet_register(participant=participant, chain=Chain.BASE,
                                      address="0x098B716B8Aaf21512996dC57EB0615e2383E2f96", actor="system")
    assert wallet.sanctions_hold
    case = ComplianceCase.objects.get(wallet=wallet)
    assert case.screening.matches[0]["uid"] == 23036
    participant.refresh_from_db()
    assert not participant.sanctions_hold  # the wallet is blocked, not the whole participant
    sol = services.wallet_register(participant=participant, chain=Chain.SOLANA,
                                   address="DFmPhtuy7Du3Hd8M6GxbCM9zfyPu8afaoMmonEEUsQvj", actor="system")
    assert sol.sanctions_hold
    with pytest.raises(gates.ComplianceRefusal) as err:
        gates.assert_may_transact(participant=participant, wallet=sol, notional_cents=1_000_00)
    assert err.value.code == "wallet_sanctioned"


def test_a_new_list_rescreens_everyone_and_blocks_newly_listed_subjects():
    import_sample()
    mm = f.make_market_maker(chains=(Chain.ETHEREUM, Chain.SOLANA), legal_name="Orchid Harbor Capital")
    eth = mm.wallets[Chain.ETHEREUM]
    assert not mm.participant.sanctions_hold and not eth.sanctions_hold
    gates.assert_may_transact(participant=mm.participant, wallet=eth, notional_cents=1_000_00)

    newer = f.sdn_xml([
        {"uid": 90001, "last_name": "ORCHID HARBOR CAPITAL LIMITED"},
        {"uid": 90002, "last_name": "UNRELATED MIXER", "addresses": [("ETH", eth.address.lower())]},
    ])
    services.sanctions_list_import(source="test://newer", content=newer)
    assert SanctionsList.objects.get(is_current=True).entry_count == 2
    mm.participant.refresh_from_db()
    eth.refresh_from_db()
    assert mm.participant.sanctions_hold and eth.sanctions_hold
    mm.wallets[Chain.SOLANA].refresh_from_db()
    assert not mm.wallets[Chain.SOLANA].sanctions_hold
    assert ComplianceCase.objects.filter(participant=mm.participant, status="open").count() == 2
    # Re-importing does not pile up duplicate cases for subjects already held.
    services.sanctions_list_import(source="test://newer-again", content=newer)
    assert ComplianceCase.objects.filter(participant=mm.participant).count() == 2


def test_clearing_a_case_lifts_the_hold_and_a_cleared_match_is_not_reopened():
    import_sample()
    officer = f.make_staff("compliance_officer")
    operations = f.make_staff("operations")
    participant = f.make_participant(legal_name="Garantex Europe OU")
    case = ComplianceCase.objects.get(participant=participant)
    with pytest.raises(InvalidInput):
        services.case_decide(case=case, decided_by=officer, decision=CaseStatus.CLEARED, reason="")
    with pytest.raises(Exception) as err:
        services.case_decide(case=case, decided_by=operations, decision=CaseStatus.CLEARED, reason="x")
    assert err.value.code == "permission_denied"
    services.case_decide(case=case, decided_by=officer, decision=CaseStatus.CLEARED,
                         reason="different entity: Estonian registry number differs, documents on file")
    participant.refresh_from_db()
    assert not participant.sanctions_hold
    history = read_stream(stream=f"case-{case.id}")
    assert [e.type for e in history] == ["compliance.screening_hit", "compliance.case_decided"]
    assert history[1].metadata["actor"] == f"user:{officer.id}"
    assert "registry number" in history[1].data["reason"]
    import_sample()  # same list again: the same match was judged already
    participant.refresh_from_db()
    assert not participant.sanctions_hold
    assert ComplianceCase.objects.filter(participant=participant).count() == 1


def test_confirming_a_case_keeps_the_block():
    import_sample()
    officer = f.make_staff("compliance_officer")
    participant = f.make_participant(legal_name="Lazarus Group")
    case = ComplianceCase.objects.get(participant=participant)
    services.case_decide(case=case, decided_by=officer, decision=CaseStatus.CONFIRMED, reason="true match")
    participant.refresh_from_db()
    assert participant.sanctions_hold
    with pytest.raises(Exception) as err:
        services.case_decide(case=case, decided_by=officer, decision=CaseStatus.CLEARED, reason="changed mind")
    assert err.value.code == "invalid_transition"


@pytest.mark.parametrize("content,what", [
    (b"<html>Service unavailable</html>", "not sdnList"),
    (b"<sdnList><sdnEntry>", "truncated"),
    (f.sdn_xml([{"uid": 1, "last_name": "A"}]).replace(b"<Record_Count>1<", b"<Record_Count>2<"), "count"),
])
def test_a_broken_or_truncated_file_is_refused_and_changes_nothing(content, what):
    before = import_sample()
    with pytest.raises(InvalidInput) as err:
        services.sanctions_list_import(source="test://broken", content=content)
    assert err.value.code == "invalid_sanctions_file", what
    assert SanctionsList.objects.get(is_current=True) == before


def test_the_import_command_takes_a_path(capsys):
    call_command("sanctions_import", str(SAMPLE))
    assert "4 entries" in capsys.readouterr().out
    call_command("sanctions_import", str(SAMPLE), "--if-changed")
    assert "unchanged" in capsys.readouterr().out
    assert SanctionsList.objects.count() == 1


def test_the_import_command_takes_a_url(live_server, capsys, settings):
    # Serve the sample over real HTTP from the test server's static route.
    from django.http import HttpResponse
    from django.urls import path as url_path

    import config.urls

    config.urls.urlpatterns.append(url_path("test-sdn.xml", lambda r: HttpResponse(SAMPLE.read_bytes(),
                                                                                   content_type="text/xml")))
    from django.urls import clear_url_caches

    clear_url_caches()
    try:
        call_command("sanctions_import", live_server.url + "/test-sdn.xml")
    finally:
        config.urls.urlpatterns.pop()
        clear_url_caches()
    assert "4 entries" in capsys.readouterr().out


def test_a_legal_name_change_is_recorded_and_screened_again():
    import_sample()
    operations = f.make_staff("operations")
    participant = f.make_participant(legal_name="Quiet Meadow Trading")
    assert not participant.sanctions_hold
    updated = services.participant_update(participant=participant, changed_by=operations,
                                          reason="registry shows new name", legal_name="Blender.io")
    assert updated.sanctions_hold
    event = [e for e in read_stream(stream=f"participant-{participant.id}")
             if e.type == "compliance.participant_updated"][0]
    assert event.data["changes"] == {"legal_name": "Blender.io"}
    assert event.metadata["actor"] == f"user:{operations.id}"
    assert ScreeningResult.objects.filter(participant=participant, trigger="name_change", hit=True).exists()
