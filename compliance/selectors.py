"""Reads of compliance state."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet

from compliance.models import ApiKey, Participant, Wallet
from config.sql import load_one, partial

# Everything authentication needs, in one statement: it runs on every API request, so it is written
# by hand rather than composed by the ORM (whose query building cost more than the query itself).
_API_KEY_FIELDS = ("id", "key_id", "user_id", "participant_id", "scope", "secret_hash", "signature_alg",
                   "hmac_key_encrypted", "ed25519_public_key", "last_used_at", "revoked_at")
_API_KEY_SQL = """
    SELECT k.id, k.key_id, k.user_id, k.participant_id, k.scope, k.secret_hash, k.signature_alg,
           k.hmac_key_encrypted, k.ed25519_public_key, k.last_used_at, k.revoked_at, u.is_active,
           ARRAY(SELECT g.name FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
                 WHERE ug.user_id = k.user_id)
    FROM compliance_apikey k JOIN auth_user u ON u.id = k.user_id
    WHERE k.key_id = %s"""


def wallets_of(*, participant: Participant) -> QuerySet[Wallet]:
    return Wallet.objects.filter(participant=participant).order_by("id")


def wallet_of(*, participant: Participant, wallet_id: int) -> Wallet | None:
    """A wallet only if it belongs to `participant`; another participant's wallet reads as absent."""
    return load_one(Wallet, "id = %s AND participant_id = %s", [wallet_id, participant.pk])


def api_key_for_authentication(*, key_id: str) -> ApiKey | None:
    """The key with its user attached: the user carries only `is_active` and its role names (other
    fields load on first access), which is all the authentication and permission checks read."""
    with connection.cursor() as cursor:
        cursor.execute(_API_KEY_SQL, [key_id])
        row = cursor.fetchone()
    if row is None:
        return None
    key = partial(ApiKey, _API_KEY_FIELDS, row[:len(_API_KEY_FIELDS)])
    user = partial(get_user_model(), ("id", "is_active"), (key.user_id, row[-2]))
    user.role_names = frozenset(row[-1])
    key.user = user
    return key
