"""Four eyes: a second person approves a request above its product's threshold."""

from __future__ import annotations

from django.db import transaction

from compliance.roles import assert_four_eyes
from mint_redeem.services.quoting import RequestError
from mint_redeem.services.transitions import kind_of, lock, record


def request_approve(*, request, user) -> None:
    with transaction.atomic():
        request = lock(request)
        if not request.needs_approval:
            raise RequestError("this request needs no approval", code="approval_not_needed")
        if request.approved_by_id is not None:
            raise RequestError("already approved", code="already_approved", http_status=409)
        initiator = getattr(request, "funded_by_id", None)
        if initiator is not None:
            assert_four_eyes(initiator_id=initiator, approver_id=user.pk)
        record(request, f"{kind_of(request)}.approved", actor=f"user:{user.pk}", data={"approved_by": user.pk},
               update_fields={"approved_by": user})
