"""The auditor's event-log browser: filters (stream, type, actor, position, time) in the admin, and
streamed CSV / JSON Lines exports of what is shown; the unfiltered JSON Lines export is what the offline
verifier recomputes an attestation from."""

from __future__ import annotations

import csv
import io
import json
import re

from django.urls import reverse

from compliance import roles
from custody.attestations import attestation_issue
from ledger import verify_attestation
from ledger.selectors import head
from tests.compliance.factories import make_staff
from tests.custody.conftest import mint


def _auditor(client):
    client.force_login(make_staff(roles.AUDITOR))
    return client


def _types(page: str) -> set[str]:
    """The event types of the listed rows (the filter sidebar names every type, so read the cells)."""
    return set(re.findall(r'<td class="field-event_type">([^<]+)</td>', page))


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_the_browser_filters_by_stream_type_actor_and_position(client, registered):
    auditor = _auditor(client)
    url = reverse("admin:ledger_event_changelist")
    page = auditor.get(url, {"stream_id": "product-AAPLx"}).content.decode()
    assert _types(page) == {"custody.product_registered", "custody.deployment_registered"}
    page = auditor.get(url, {"metadata__actor": "system"}).content.decode()
    assert _types(page) == {"test_attest.tokens"}
    last = head().position
    page = auditor.get(url, {"position__gt": str(last - 1), "position__lte": str(last)}).content.decode()
    assert _types(page) == {"test_attest.tokens"}
    page = auditor.get(url, {"recorded_at__gte": "2999-01-01T00:00:00Z"}).content.decode()
    assert _types(page) == set()
    assert "Export CSV" in page and "recorded_at__gte=" in page  # the exports carry the filters


def test_exports_stream_the_filtered_events_as_csv_and_json_lines(client, registered):
    auditor = _auditor(client)
    response = auditor.get(reverse("admin:ledger_event_export_csv"), {"event_type": "custody.deployment_registered"})
    assert response.status_code == 200 and response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert [json.loads(r["data"])["chain"] for r in rows] == ["ethereum", "solana"]
    assert {r["actor"] for r in rows} == {"user:1"}
    jsonl = auditor.get(reverse("admin:ledger_event_export_jsonl"), {"stream_id": "product-AAPLx"})
    lines = [json.loads(line) for line in _body(jsonl).splitlines()]
    assert [line["event"]["type"] for line in lines] == ["custody.product_registered",
                                                         "custody.deployment_registered",
                                                         "custody.deployment_registered"]
    bad = auditor.get(reverse("admin:ledger_event_export_csv"), {"position__gt": "x"})
    assert bad.status_code == 400


def test_the_unfiltered_export_is_what_the_verifier_recomputes_an_attestation_from(client, registered):
    row = attestation_issue(actor="user:1")
    mint("ethereum", "AAPLx", 5)
    export = _body(_auditor(client).get(reverse("admin:ledger_event_export_jsonl")))
    verify_attestation.check_log(json.loads(row.document)["payload"], export.splitlines())


def test_only_staff_may_export(client, registered):
    response = client.get(reverse("admin:ledger_event_export_jsonl"))
    assert response.status_code == 302 and "/login/" in response["Location"]
