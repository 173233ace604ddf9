"""Roles are Django groups. Their permissions are derived from rules, not listed by hand, so models
added later by other apps are covered as soon as they are migrated:

- auditor: every `view_*` permission of every app (read-only everywhere).
- operations: view everything; add/change participants, wallets, API keys of market makers, and
  add/change/view on custody and mint_redeem models.
- approver: view everything; every permission whose codename starts with `approve_` (the convention
  other apps use for four-eyes approvals).
- compliance_officer: view everything; all permissions on compliance models, including the custom
  `decide_case`, `approve_kyc`, `freeze_wallet` and `import_sanctions`.
- market_maker: no admin permissions; reaches the API only with an API key.
"""

from __future__ import annotations

from config.api import DomainError

OPERATIONS = "operations"
APPROVER = "approver"
COMPLIANCE_OFFICER = "compliance_officer"
AUDITOR = "auditor"
MARKET_MAKER = "market_maker"
ALL_ROLES = (OPERATIONS, APPROVER, COMPLIANCE_OFFICER, AUDITOR, MARKET_MAKER)

STAFF_ROLES = frozenset({OPERATIONS, APPROVER, COMPLIANCE_OFFICER, AUDITOR})
_OPERATIONS_APPS = {"custody", "mint_redeem"}
_OPERATIONS_COMPLIANCE_MODELS = {"participant", "wallet", "apikey", "marketmakeruser", "notionalusage"}


class FourEyesViolation(DomainError):
    code = "four_eyes_violation"
    http_status = 403


def assert_four_eyes(*, initiator_id: int, approver_id: int) -> None:
    """Refuse an approval by the person who initiated the action."""
    if initiator_id is None or approver_id is None:
        raise FourEyesViolation("both the initiator and the approver must be known")
    if int(initiator_id) == int(approver_id):
        raise FourEyesViolation("an action must be approved by someone other than its initiator")


def user_has_role(user, role: str) -> bool:
    if user is None or not user.is_authenticated:
        return False
    known = getattr(user, "role_names", None)  # set when authentication already read them
    if known is not None:
        return role in known
    return user.groups.filter(name=role).exists()


def _wanted(perm, role: str) -> bool:
    app, codename = perm.content_type.app_label, perm.codename
    action, _, model = codename.partition("_")
    if action == "view":
        return role != MARKET_MAKER
    if role == AUDITOR or role == MARKET_MAKER:
        return False
    if role == APPROVER:
        return codename.startswith("approve_")
    if role == COMPLIANCE_OFFICER:
        return app == "compliance"
    if role == OPERATIONS:
        if app in _OPERATIONS_APPS:
            return action in {"add", "change"} and not codename.startswith("approve_")
        if app == "compliance":
            return action in {"add", "change"} and perm.content_type.model in _OPERATIONS_COMPLIANCE_MODELS
    return False


def sync_role_permissions(*, group_model=None, permission_model=None, using: str = "default") -> None:
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = Group, Permission
    perms = list(permission_model.objects.using(using).select_related("content_type"))
    for role in ALL_ROLES:
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        group.permissions.set([p for p in perms if _wanted(p, role)])


def sync_role_permissions_on_migrate(sender, using="default", **kwargs) -> None:
    from django.contrib.auth.models import Group
    from django.db import connections

    # Migrating only some apps (`migrate ledger 0002` on a fresh database) sends this signal before
    # auth's tables exist.
    if Group._meta.db_table not in connections[using].introspection.table_names():
        return
    if not Group.objects.using(using).filter(name__in=ALL_ROLES).exists():
        return  # our data migration has not run (e.g. migrating another app first)
    # On the connection that migrated (the owner's): the application role's privileges are granted
    # only once migrate is done.
    sync_role_permissions(using=using)
