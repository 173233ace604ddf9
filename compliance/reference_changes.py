"""Reference data changes with four eyes: brokers, securities, products, product terms and custody
accounts change only when one person proposes a change with a reason and another applies it.

Each app registers its models and the fields that may change (`register`), with an optional extra
rule (a broker's API base URL must be on the allowlist) and an optional way to apply a field through
the app's own service (a product's multiplier is a corporate action with its own ledger event). The
proposal records the values the proposer saw; if the row changed since, it is stale and refused.
Every proposal, application and rejection is a ledger event on `reference-<app>.<model>-<id>`.
Identifiers the ledger names accounts after (tickers, symbols, codes) are not changeable at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from compliance.models import ReferenceChange
from compliance.roles import FourEyesViolation
from config.api import DomainError
from config.logging import current_correlation_id
from ledger.services import NewEvent, append

MIN_REASON_CHARS = 10


class ReferenceChangeRefused(DomainError):
    code = "reference_change_refused"
    http_status = 422


@dataclass(frozen=True)
class Changeable:
    model: type[models.Model]
    fields: tuple[str, ...]
    validate: Callable[[models.Model], None] | None = None  # raises ValidationError
    # field -> apply(instance, value, actor, reason): for fields an app's own service must change.
    appliers: dict[str, Callable] = field(default_factory=dict)


_REGISTRY: dict[type[models.Model], Changeable] = {}


def register(model: type[models.Model], *, fields: tuple[str, ...], validate=None, appliers=None) -> None:
    _REGISTRY[model] = Changeable(model=model, fields=fields, validate=validate, appliers=dict(appliers or {}))


def changeable(model: type[models.Model]) -> Changeable | None:
    return _REGISTRY.get(model)


def _text(instance: models.Model, name: str) -> str | None:
    model_field = instance._meta.get_field(name)
    value = getattr(instance, model_field.attname)
    if value is None:
        return None
    if isinstance(model_field, models.JSONField):
        return json.dumps(value, sort_keys=True)
    return model_field.value_to_string(instance)


def _value(model: type[models.Model], name: str, text: str | None):
    model_field = model._meta.get_field(name)
    if text is None:
        return None
    if isinstance(model_field, models.JSONField):
        return json.loads(text)
    return model_field.to_python(text)


def _refuse(message: str, code: str, details=None):
    raise ReferenceChangeRefused(message, code=code, details=details)


def _check(spec: Changeable, candidate: models.Model, names) -> None:
    try:
        candidate.full_clean(exclude=[f.name for f in candidate._meta.fields if f.name not in names])
        if spec.validate is not None:
            spec.validate(candidate)
    except ValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        _refuse("the proposed values are not valid", "invalid_reference_change", details)


def _append(event_type: str, proposal: ReferenceChange, data: dict, *, actor: str) -> None:
    append(events=[NewEvent(stream=proposal.stream, type=event_type, data={
        "change_id": proposal.pk, "model": proposal.content_type.model, "object_id": proposal.object_id, **data})],
        actor=actor, correlation_id=current_correlation_id())


def reference_change_propose(*, target: models.Model, changes: dict, reason: str, user) -> ReferenceChange:
    """Propose new values for some fields of `target` (Python values or their text); nothing changes yet."""
    spec = changeable(type(target))
    if spec is None:
        _refuse(f"{type(target).__name__} is not reference data that changes by proposal", "not_changeable")
    meta = target._meta
    if not user.has_perm(f"{meta.app_label}.change_{meta.model_name}"):
        raise DomainError("you may not propose changes to this", code="permission_denied", http_status=403)
    unknown = sorted(set(changes) - set(spec.fields))
    if unknown:
        _refuse(f"these fields cannot be changed by proposal: {unknown}", "field_not_changeable",
                {"fields": unknown})
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_CHARS:
        _refuse(f"give a reason of at least {MIN_REASON_CHARS} characters", "reason_required")
    candidate = type(target).objects.get(pk=target.pk)
    before, proposed = {}, {}
    for name, value in changes.items():
        model_field = meta.get_field(name)
        if isinstance(value, str) and not isinstance(model_field, models.CharField | models.TextField):
            try:
                value = _value(type(target), name, value)
            except (ValidationError, ValueError) as exc:
                _refuse(f"{name}: {exc}", "invalid_reference_change", {name: [str(exc)]})
        before[name] = _text(candidate, name)
        setattr(candidate, model_field.attname, value)
        proposed[name] = _text(candidate, name)
    proposed = {k: v for k, v in proposed.items() if v != before[k]}
    if not proposed:
        _refuse("the proposal changes nothing", "no_change")
    _check(spec, candidate, proposed)
    with transaction.atomic():
        proposal = ReferenceChange.objects.create(
            content_type=ContentType.objects.get_for_model(type(target)), object_id=target.pk,
            object_repr=str(target)[:200], changes=proposed, before={k: before[k] for k in proposed},
            reason=reason, proposed_by=user)
        _append("reference.change_proposed", proposal, {"changes": proposed, "before": proposal.before,
                                                        "reason": reason}, actor=f"user:{user.pk}")
    return proposal


def reference_change_approve(*, change: ReferenceChange, user) -> ReferenceChange:
    """A second person applies the change: checked again, applied under the row's lock, recorded."""
    if not (user.is_active and user.has_perm("compliance.approve_referencechange")):
        raise DomainError("you may not apply reference changes", code="permission_denied", http_status=403)
    with transaction.atomic():
        change = ReferenceChange.objects.select_for_update().select_related("content_type").get(pk=change.pk)
        if change.status != ReferenceChange.Status.PENDING:
            _refuse(f"this change is {change.status}", "change_not_pending")
        if change.proposed_by_id == user.pk:
            raise FourEyesViolation("a change must be applied by someone other than its proposer")
        model = change.content_type.model_class()
        spec = changeable(model)
        target = model.objects.select_for_update().get(pk=change.object_id)
        current = {name: _text(target, name) for name in change.changes}
        if current != change.before:
            change.status, change.decided_by, change.decided_at = ReferenceChange.Status.STALE, user, timezone.now()
            change.decision_reason = "the values changed since the proposal"
            change.save()
            _append("reference.change_rejected", change, {"status": change.status, "reason": change.decision_reason},
                    actor=f"user:{user.pk}")
            return change
        generic = {name: text for name, text in change.changes.items() if name not in spec.appliers}
        for name, text in generic.items():
            setattr(target, model._meta.get_field(name).attname, _value(model, name, text))
        _check(spec, target, change.changes)
        if generic:
            target.save(update_fields=[model._meta.get_field(n).attname for n in generic])
        actor = f"user:{user.pk}"
        change.status, change.decided_by, change.decided_at = ReferenceChange.Status.APPLIED, user, timezone.now()
        change.save()
        _append("reference.changed", change, {"changes": change.changes, "before": change.before,
                                              "reason": change.reason, "proposed_by": change.proposed_by_id,
                                              "approved_by": user.pk}, actor=actor)
        for name, apply in spec.appliers.items():
            if name in change.changes:
                apply(target, _value(model, name, change.changes[name]), actor=actor, reason=change.reason)
    return change


def reference_change_reject(*, change: ReferenceChange, user, reason: str) -> ReferenceChange:
    if not (user.is_active and user.has_perm("compliance.approve_referencechange")):
        raise DomainError("you may not decide reference changes", code="permission_denied", http_status=403)
    reason = (reason or "").strip()
    if not reason:
        _refuse("give a reason", "reason_required")
    with transaction.atomic():
        change = ReferenceChange.objects.select_for_update().select_related("content_type").get(pk=change.pk)
        if change.status != ReferenceChange.Status.PENDING:
            _refuse(f"this change is {change.status}", "change_not_pending")
        change.status, change.decided_by, change.decided_at = ReferenceChange.Status.REJECTED, user, timezone.now()
        change.decision_reason = reason
        change.save()
        _append("reference.change_rejected", change, {"status": change.status, "reason": reason},
                actor=f"user:{user.pk}")
    return change
