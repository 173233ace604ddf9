"""The transition engine every mint and redemption service uses.

A transition locks the request row, asks the lifecycle (`mint_redeem.lifecycle`) whether the event is
allowed, updates the row, queues webhook deliveries and appends its ledger events at the stream version
the row reflects, all in the caller's transaction. The ledger append comes last: it takes the ledger's
global lock, which is then held only until the commit that follows.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from config import transactions
from config.logging import current_correlation_id
from ledger.postings import Posting
from ledger.services import NewEvent, append
from mint_redeem import jobs, selectors
from mint_redeem.lifecycle import AUTOMATIC_STATES, MintLifecycle, RedemptionLifecycle, next_state
from mint_redeem.models import MintRequest, WebhookDelivery

FINAL_REASON_STATES = ("rejected", "cancelled", "failed")


def kind_of(request) -> str:
    return "mint" if isinstance(request, MintRequest) else "redemption"


def machine_of(request) -> type:
    return MintLifecycle if isinstance(request, MintRequest) else RedemptionLifecycle


def lock(request):
    """The request's row, locked until the transaction ends: every transition of one request queues here."""
    return type(request).objects.select_for_update(of=("self",)).select_related(
        "product__security", "participant", "wallet").get(pk=request.pk)


def transition(request, event: str, *, actor: str, reason: str = "", refs: dict | None = None,
               postings: Sequence[Posting] = (), amounts: dict[str, int] | None = None, extra_events: Sequence[NewEvent] = (),
               update_fields: dict | None = None, append_events: bool = True, save: bool = True,
               endpoint_ids: list[int] | None = None) -> list[NewEvent]:
    """Move a locked request along its lifecycle; returns its events (appended unless told not to, for
    callers that hand them to another app's append in the same transaction). `save=False` leaves the
    row to the caller (a batch writes many rows in one statement); `endpoint_ids`, when the caller has
    read the participant's webhook endpoints already."""
    target = next_state(machine_of(request), request.state, event, in_kind=request.in_kind)
    kind = kind_of(request)
    ledger_event = NewEvent(stream=request.stream, type=f"{kind}.{target}", postings=list(postings), data={
        "request_id": request.pk, "from_state": request.state, "to_state": target, "reason": reason[:500],
        "refs": {k: str(v) for k, v in (refs or {}).items()}, "amounts": dict(amounts or {})})
    events = [ledger_event, *extra_events]
    own_events = sum(1 for e in events if e.stream == request.stream)
    previous_state = request.state
    request.state = target
    request.version += own_events
    for field, value in (update_fields or {}).items():
        setattr(request, field, value)
    if reason and target in FINAL_REASON_STATES:
        request.reason = reason[:2000]
    if save:
        request.save()
    notify(request, event_type=f"{kind}.{target}", previous_state=previous_state, endpoint_ids=endpoint_ids)
    if target in AUTOMATIC_STATES[kind]:
        jobs.enqueue_on_commit(jobs.ADVANCE_REQUEST, kind, request.pk)
    if append_events:
        append_to_stream(request, events, actor=actor, expected_version=request.version - own_events)
    return events


def record(request, event_type: str, *, actor: str, data: dict, postings: Sequence[Posting] = (),
           update_fields: dict | None = None) -> None:
    """An event on a locked request that does not change its state (an approval, a retry scheduled)."""
    for field, value in (update_fields or {}).items():
        setattr(request, field, value)
    request.version += 1
    request.save()
    append_to_stream(request, [NewEvent(stream=request.stream, type=event_type, postings=list(postings),
                                        data={"request_id": request.pk, **data})],
                     actor=actor, expected_version=request.version - 1)


def append_to_stream(request, events: Sequence[NewEvent], *, actor: str, expected_version: int,
                     savepoint: bool = True) -> None:
    """Append the request's events: at once, or, on an all-or-nothing API request, as its last statements
    (config.transactions.last), after the response is stored."""
    correlation_id = current_correlation_id()
    transactions.last(lambda: append(events=list(events), expected={request.stream: expected_version},
                                     actor=actor, correlation_id=correlation_id, savepoint=savepoint))


def notify(request, *, event_type: str, previous_state: str, endpoint_ids: list[int] | None = None) -> None:
    """Queue one delivery per active endpoint of the request's participant, in the same transaction
    (`endpoint_ids` when the caller has just read them)."""
    from mint_redeem.webhooks import request_payload

    if endpoint_ids is None:
        endpoint_ids = selectors.active_webhook_endpoint_ids(participant_id=request.participant_id)
    if not endpoint_ids:
        return
    # event_id carries the stream version, so it is new for every transition.
    event_id = f"{request.stream}.{request.version}.{request.state}"
    now = timezone.now()
    payload = {"id": event_id, "type": event_type, "created_at": now.isoformat(),
               "previous_state": previous_state, "data": request_payload(request)}
    # Due now: sent by the task queued on commit, or by the retry beat if the process dies before that.
    deliveries = WebhookDelivery.objects.bulk_create([
        WebhookDelivery(endpoint_id=endpoint_id, event_id=event_id, event_type=event_type, payload=payload,
                        next_attempt_at=now) for endpoint_id in endpoint_ids])
    for delivery in deliveries:
        jobs.enqueue_on_commit(jobs.DELIVER_WEBHOOK, delivery.pk)
