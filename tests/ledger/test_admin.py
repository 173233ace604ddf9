import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from ledger.models import Balance, Event
from ledger.postings import Line
from ledger.services import NewEvent, append


@pytest.fixture
def superuser_client(client, db):
    user = get_user_model().objects.create_superuser("root-admin", "r@example.invalid", "pw-long-enough-123")
    client.force_login(user)
    return client


@pytest.fixture
def event(db, tag):
    return append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={"note": "hi"},
                                   postings=[Line(f"t/{tag}/a", "USD", -3), Line(f"t/{tag}/b", "USD", 3)])],
                  actor="user:1").events[0]


def test_superuser_can_read_events_postings_and_balances(superuser_client, event):
    for name in ("event", "posting", "balance", "account", "pendingtransfer", "stream"):
        assert superuser_client.get(reverse(f"admin:ledger_{name}_changelist")).status_code == 200
    page = superuser_client.get(reverse("admin:ledger_event_change", args=[event.position]))
    assert page.status_code == 200
    assert event.hash.hex() in page.content.decode()


def test_nobody_can_edit_or_delete_in_the_admin(superuser_client, event, tag):
    change_url = reverse("admin:ledger_event_change", args=[event.position])
    response = superuser_client.post(change_url, {"event_type": "tampered"})
    assert response.status_code == 403
    assert superuser_client.get(reverse("admin:ledger_event_add")).status_code == 403
    assert superuser_client.post(reverse("admin:ledger_event_delete", args=[event.position]), {"post": "yes"}
                                 ).status_code == 403
    balance = Balance.objects.get(account__path=f"t/{tag}/b")
    assert superuser_client.post(reverse("admin:ledger_balance_change", args=[balance.pk]), {"posted": "999"}
                                 ).status_code == 403
    assert Event.objects.get(position=event.position).event_type == "test.moved"
    assert Balance.objects.get(pk=balance.pk).posted == 3
