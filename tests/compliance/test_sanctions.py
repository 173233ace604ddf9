from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

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


def import_sample(officer=None):
    return services.sanctions_list_import(source=str(SAMPLE), content=SAMPLE.read_bytes(),
                                          imported_by=officer or f.make_staff("compliance_officer"))


def sample_without(*uids: int) -> bytes:
    """The published sample with some entries taken out, and its Record_Count saying so."""
    text = SAMPLE.read_text(encoding="utf-8")
    for uid in uids:
        start = text.index(f"<sdnEntry>\n    <uid>{uid}</uid>")
        end = text.index("</sdnEntry>", start) + len("</sdnEntry>")
        text = text[:start] + text[end:]
    count = text.count("<sdnEntry>")
    return text.replace("<Record_Count>4</Record_Count>", f"<Record_Count>{count}</Record_Count>").encode()


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

    officer = f.make_staff("compliance_officer")
    newer = f.sdn_xml([
        {"uid": 90001, "last_name": "ORCHID HARBOR CAPITAL LIMITED"},
        {"uid": 90002, "last_name": "UNRELATED MIXER", "addresses": [("ETH", eth.address.lower())]},
        {"uid": 90003, "last_name": "NORTHERN STAR SHIPPING"},
        {"uid": 90004, "last_name": "EASTERN GATE TRADING"},
    ])
    services.sanctions_list_import(source="test://newer", content=newer, imported_by=officer)
    assert SanctionsList.objects.get(is_current=True).entry_count == 4
    mm.participant.refresh_from_db()
    eth.refresh_from_db()
    assert mm.participant.sanctions_hold and eth.sanctions_hold
    mm.wallets[Chain.SOLANA].refresh_from_db()
    assert not mm.wallets[Chain.SOLANA].sanctions_hold
    assert ComplianceCase.objects.filter(participant=mm.participant, status="open").count() == 2
    # Re-importing does not pile up duplicate cases for subjects already held.
    services.sanctions_list_import(source="test://newer-again", content=newer, imported_by=officer)
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
    (SAMPLE.read_bytes().replace(b"<Record_Count>4</Record_Count>", b"<Record_Count>5</Record_Count>"),
     "the published sample, stating one entry more than it holds"),
    (SAMPLE.read_bytes().replace(b"<Record_Count>4</Record_Count>", b""), "the published sample, no Record_Count"),
    (SAMPLE.read_bytes().replace(b"<Record_Count>4</Record_Count>", b"<Record_Count></Record_Count>"),
     "an empty Record_Count"),
])
@pytest.mark.reliability
def test_a_broken_or_truncated_file_is_refused_and_changes_nothing(content, what):
    before = import_sample()
    with pytest.raises(InvalidInput) as err:
        services.sanctions_list_import(source="test://broken", content=content,
                                       imported_by=f.make_staff("compliance_officer"))
    assert err.value.code == "invalid_sanctions_file", what
    assert SanctionsList.objects.get() == before


def test_a_file_without_its_record_count_is_refused_even_as_the_first_list():
    without = SAMPLE.read_bytes().replace(b"<Record_Count>4</Record_Count>", b"")
    with pytest.raises(InvalidInput) as err:
        services.sanctions_list_import(source="test://no-count", content=without,
                                       imported_by=f.make_staff("compliance_officer"))
    assert (err.value.code, err.value.message) == ("invalid_sanctions_file",
                                                   "the file does not state its Record_Count (publshInformation)")
    assert not SanctionsList.objects.exists()


def test_the_import_command_takes_a_path(capsys):
    officer = f.make_staff("compliance_officer")
    call_command("sanctions_import", str(SAMPLE), "--user", officer.username)
    assert "4 entries" in capsys.readouterr().out
    call_command("sanctions_import", str(SAMPLE), "--if-changed", "--user", officer.username)
    assert "unchanged" in capsys.readouterr().out
    assert SanctionsList.objects.count() == 1


def test_the_importer_is_a_compliance_officer_and_is_recorded_on_the_list_and_its_event():
    with pytest.raises(Exception) as err:
        import_sample(officer=f.make_staff("operations"))
    assert err.value.code == "permission_denied"
    assert not SanctionsList.objects.exists()

    officer = f.make_staff("compliance_officer")
    imported = import_sample(officer=officer)
    assert imported.imported_by == officer
    event = read_stream(stream=f"sanctions-list-{imported.id}")[0]
    assert event.type == "compliance.sanctions_list_imported"
    assert event.data["imported_by"] == officer.id and event.metadata["actor"] == f"user:{officer.id}"
    assert (event.data["record_count"], event.data["entry_count"]) == (4, 4)


def test_a_list_much_smaller_than_the_current_one_waits_for_a_second_compliance_officer():
    alice, bob = f.make_staff("compliance_officer"), f.make_staff("compliance_officer")
    current = import_sample(officer=alice)
    listed = f.make_participant(legal_name="Garantex Europe OÜ")
    assert listed.sanctions_hold

    # Garantex (uid 32524) delisted; 3 of 4 entries is under 90%: held, not current, nothing re-screened.
    with pytest.raises(services.SanctionsListHeldForApproval) as held_error:
        services.sanctions_list_import(source="test://smaller", content=sample_without(32524), imported_by=alice)
    assert held_error.value.code == "sanctions_list_shrunk"
    held = SanctionsList.objects.get(held=True)
    assert held_error.value.details == {"held_list_id": held.id, "entry_count": 3, "current_entry_count": 4,
                                        "min_percent": 90}
    assert SanctionsList.objects.get(is_current=True) == current
    assert (held.imported_by, held.compared_to, held.entry_count) == (alice, current, 3)
    [held_event] = read_stream(stream=f"sanctions-list-{held.id}")
    assert held_event.type == "compliance.sanctions_list_held"
    assert (held_event.data["imported_by"], held_event.data["current_entry_count"]) == (alice.id, 4)
    # The same file again is the same held list.
    with pytest.raises(services.SanctionsListHeldForApproval):
        services.sanctions_list_import(source="test://smaller", content=sample_without(32524), imported_by=alice)
    assert SanctionsList.objects.filter(held=True).count() == 1

    # Not by the importer, not by anyone but a compliance officer, and with a reason.
    with pytest.raises(Exception) as err:
        services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=alice, reason="delisting")
    assert err.value.code == "four_eyes_violation"
    with pytest.raises(Exception) as err:
        services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=f.make_staff("operations"),
                                               reason="delisting")
    assert err.value.code == "permission_denied"
    with pytest.raises(InvalidInput):
        services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=bob, reason=" ")
    assert SanctionsList.objects.get(is_current=True) == current

    approved = services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=bob,
                                                      reason="OFAC delisted Garantex on the publish date")
    assert approved.is_current and not approved.held and approved.shrink_approved_by == bob
    current.refresh_from_db()
    assert not current.is_current
    imported_event = read_stream(stream=f"sanctions-list-{held.id}")[-1]
    assert imported_event.type == "compliance.sanctions_list_imported"
    assert imported_event.metadata["actor"] == f"user:{bob.id}"
    assert {k: imported_event.data[k] for k in ("imported_by", "shrink_approved_by", "previous_entry_count",
                                                 "entry_count")} == {
        "imported_by": alice.id, "shrink_approved_by": bob.id, "previous_entry_count": 4, "entry_count": 3}
    # Everyone was screened against it (the open case keeps its hold until a person decides it).
    assert ScreeningResult.objects.filter(participant=listed, sanctions_list=approved, hit=False).exists()
    with pytest.raises(Exception) as err:
        services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=bob, reason="again")
    assert err.value.code == "invalid_transition"


@pytest.mark.parametrize("new_count,held", [(9, False), (8, True)])
def test_the_line_is_ninety_percent_of_the_current_entries(new_count, held):
    officer = f.make_staff("compliance_officer")
    entries = [{"uid": 100 + n, "last_name": f"LISTED ENTITY {n}"} for n in range(10)]
    services.sanctions_list_import(source="test://ten", content=f.sdn_xml(entries), imported_by=officer)
    smaller = f.sdn_xml(entries[:new_count])
    if held:
        with pytest.raises(services.SanctionsListHeldForApproval):
            services.sanctions_list_import(source="test://smaller", content=smaller, imported_by=officer)
    else:
        services.sanctions_list_import(source="test://smaller", content=smaller, imported_by=officer)
    assert SanctionsList.objects.get(is_current=True).entry_count == (10 if held else new_count)


def test_a_held_list_cannot_be_approved_once_another_list_became_current():
    alice, bob = f.make_staff("compliance_officer"), f.make_staff("compliance_officer")
    import_sample(officer=alice)
    with pytest.raises(services.SanctionsListHeldForApproval):
        services.sanctions_list_import(source="test://smaller", content=sample_without(32524, 23036),
                                       imported_by=alice)
    held = SanctionsList.objects.get(held=True)
    newer = services.sanctions_list_import(source="test://same-size", content=sample_without(),
                                           imported_by=alice)  # the sample again, whole
    with pytest.raises(Exception) as err:
        services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=bob, reason="delisting")
    assert err.value.code == "sanctions_list_superseded"
    assert SanctionsList.objects.get(is_current=True) == newer


def test_the_approve_command_makes_the_held_list_current(capsys):
    alice, bob = f.make_staff("compliance_officer"), f.make_staff("compliance_officer")
    import_sample(officer=alice)
    with pytest.raises(CommandError) as refused:
        call_command("sanctions_import", "test-smaller.xml", "--user", alice.username)  # no such file
    assert "no such file" in str(refused.value)
    with pytest.raises(services.SanctionsListHeldForApproval):
        services.sanctions_list_import(source="test://smaller", content=sample_without(32524), imported_by=alice)
    held = SanctionsList.objects.get(held=True)
    with pytest.raises(CommandError) as refused:
        call_command("sanctions_approve_shrink", str(held.id), "--user", alice.username, "--reason", "x")
    assert str(refused.value).startswith("four_eyes_violation")
    call_command("sanctions_approve_shrink", str(held.id), "--user", bob.username, "--reason", "delisting")
    assert capsys.readouterr().out.startswith(f"list {held.id} is current: 3 entries, imported by {alice.username}, "
                                              f"approved by {bob.username}")


# --- downloads: https only, no redirects ----------------------------------------------------------

class _Server:
    """A real HTTP(S) server on 127.0.0.1 answering GETs with `respond(handler)`; records the paths asked."""

    def __init__(self, respond, tls=None):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requested: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requested.append(self.path)
                respond(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"{'https' if tls else 'http'}://localhost:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _serve_sample(handler):
    body = SAMPLE.read_bytes()
    handler.send_response(200)
    handler.send_header("Content-Type", "text/xml")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def https_server(tmp_path, monkeypatch):
    """An https server whose certificate (for "localhost") requests is told to trust, as it would a
    public CA's; the test gives it what to answer."""
    from tests.tls import self_signed

    server_tls, _client_tls = self_signed(tmp_path, "localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "localhost.pem"))
    started = []

    def start(respond):
        started.append(_Server(respond, tls=server_tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_the_import_command_downloads_over_https(https_server, capsys):
    server = https_server(_serve_sample)
    officer = f.make_staff("compliance_officer")
    call_command("sanctions_import", server.base + "/sdn.xml", "--user", officer.username)
    assert "4 entries" in capsys.readouterr().out
    assert server.requested == ["/sdn.xml"]
    imported = SanctionsList.objects.get(is_current=True)
    assert (imported.source, imported.imported_by) == (server.base + "/sdn.xml", officer)


def test_a_redirect_is_refused_not_followed(https_server):
    target = https_server(_serve_sample)

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", target.base + "/sdn.xml")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    redirecting = https_server(redirect)
    officer = f.make_staff("compliance_officer")
    with pytest.raises(CommandError) as refused:
        call_command("sanctions_import", redirecting.base + "/latest", "--user", officer.username)
    assert str(refused.value).startswith(f"sanctions_redirect_refused: {redirecting.base}/latest answered with a "
                                         f"redirect (HTTP 302 to {target.base}/sdn.xml)")
    assert target.requested == []
    assert not SanctionsList.objects.exists()


def test_plain_http_is_refused_before_anything_is_requested():
    server = _Server(_serve_sample)
    try:
        officer = f.make_staff("compliance_officer")
        with pytest.raises(CommandError) as refused:
            call_command("sanctions_import", server.base + "/sdn.xml", "--user", officer.username)
        assert str(refused.value) == "sanctions_url_not_https: sanctions lists are downloaded over https only, not http://"
        assert server.requested == []
        assert not SanctionsList.objects.exists()
    finally:
        server.close()


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
