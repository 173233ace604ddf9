"""EVM nonces per signer, assigned under a row lock (architecture section 5).

Two workers that sign for the same address must never use the same nonce (one transaction would
replace or be refused for the other), and a nonce must never be skipped (every later transaction
would wait behind the gap forever). So a nonce is taken from a `SignerNonce` row under
SELECT ... FOR UPDATE, in the transaction that also records the transaction signed with it: if that
transaction rolls back, the nonce was never taken; if it commits, the signed transaction is on
record and will be broadcast (or replaced at the same nonce), so the nonce is used.

The row is created from the chain's pending nonce the first time a signer is seen, and moves forward
to the chain's pending nonce whenever the chain is ahead (the key was also used elsewhere, or the
database was restored from a backup): it never moves back, since our own signed transactions not yet
broadcast sit between the chain's count and the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import connection, transaction

from chains.models import SignerNonce

logger = logging.getLogger(__name__)


def nonce_assign(*, chain: str, address: str, chain_pending_nonce: Callable[[], int], count: int = 1) -> int:
    """Take `count` consecutive nonces for `address` on `chain` and return the first.

    Call it inside the transaction that records what is signed with them: the row stays locked until
    that transaction ends, which is what makes the sequence gapless. `chain_pending_nonce` is asked
    under the lock (eth_getTransactionCount(address, "pending")).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    with transaction.atomic():
        # Create the row if it is missing without a race: a concurrent creator's insert is ignored.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO chains_signernonce (chain, address, next_nonce, updated_at) VALUES (%s, %s, 0, now()) "
                "ON CONFLICT (chain, address) DO NOTHING", [chain, address])
        row = SignerNonce.objects.select_for_update().get(chain=chain, address=address)
        on_chain = chain_pending_nonce()
        if on_chain > row.next_nonce:
            if row.next_nonce:
                logger.warning("nonce of %s on %s moved forward from %s to the chain's %s (key used elsewhere?)",
                               address, chain, row.next_nonce, on_chain)
            row.next_nonce = on_chain
        first = row.next_nonce
        row.next_nonce = first + count
        row.save(update_fields=["next_nonce", "updated_at"])
    return first
