"""Four eyes on every path that can create tokens or release shares or cash.

Above its product's threshold a request needs a second person's approval before its order (cash mints
and redemptions), its chain step (in-kind mints) or its in-kind delivery (in-kind redemptions). The
approver must differ from every person who acted on the request (its ledger stream names each actor:
who recorded the funding, the shares, the tokens, a top-up or the payout), and nobody may record
anything on a request they approved. A superuser is no exception.
"""

from __future__ import annotations

from django.db import transaction

from compliance.roles import FourEyesViolation
from config.api import DomainError
from ledger import selectors as ledger_selectors
from mint_redeem import jobs
from mint_redeem.lifecycle import AUTOMATIC_STATES
from mint_redeem.services.quoting import RequestError
from mint_redeem.services.transitions import kind_of, lock, record


class PermissionRefused(DomainError):
    code = "permission_denied"
    http_status = 403


def user_id_of(actor: str) -> int | None:
    """The user behind an actor string ("user:<id>"), or None for tasks, market makers and the system."""
    kind, _, ident = actor.partition(":")
    return int(ident) if kind == "user" and ident.isdigit() else None


def people_who_acted(request) -> set[int]:
    return {uid for e in ledger_selectors.read_stream(stream=request.stream)
            if (uid := user_id_of(str(e.metadata.get("actor") or ""))) is not None}


def assert_not_the_approver(request, *, actor: str) -> None:
    """With `request` locked: the person recording something on it must not be the one who approved it."""
    uid = user_id_of(actor)
    if uid is not None and request.approved_by_id is not None and int(request.approved_by_id) == uid:
        raise FourEyesViolation("you approved this request, so someone else must record what happens to it")


def assert_approved_if_needed(request) -> None:
    if request.needs_approval and request.approved_by_id is None:
        raise RequestError("this request is above its product's threshold and waits for a second person's "
                           "approval", code="approval_required", http_status=409)


def request_approve(*, request, user) -> None:
    permission = f"mint_redeem.approve_{type(request)._meta.model_name}"
    if not (user and user.is_active and user.has_perm(permission)):
        raise PermissionRefused("you may not approve requests")
    with transaction.atomic():
        request = lock(request)
        if not request.needs_approval:
            raise RequestError("this request needs no approval", code="approval_not_needed")
        if request.approved_by_id is not None:
            raise RequestError("already approved", code="already_approved", http_status=409)
        if request.state in ("rejected", "cancelled", "failed"):
            raise RequestError(f"the request is {request.state}", code="transition_not_allowed", http_status=409)
        if user.pk in people_who_acted(request):
            raise FourEyesViolation("an action must be approved by someone other than everyone who acted on it")
        kind = kind_of(request)
        record(request, f"{kind}.approved", actor=f"user:{user.pk}", data={"approved_by": user.pk},
               update_fields={"approved_by": user})
        if request.state in AUTOMATIC_STATES[kind]:
            jobs.enqueue_on_commit(jobs.ADVANCE_REQUEST, kind, request.pk)
