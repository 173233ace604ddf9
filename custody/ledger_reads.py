"""Ledger reads the ledger's selectors do not offer in one query: every balance under a prefix as of
a past log position (for reconciliation at a statement's instant and reserves at any point in time)."""

from __future__ import annotations

from django.db import connection

from ledger.selectors import BalanceFigures


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def balances_as_of_by_prefix(*, prefix: str, position: int, asset: str | None = None
                             ) -> dict[tuple[str, str], BalanceFigures]:
    """Balances of every account under `prefix` (optionally one asset) after the event at `position`,
    keyed by (path, asset). One query: one index probe (ledger_posting_asof_idx) per account and asset."""
    sql = """
        SELECT a.path, b.asset, p.posted_after, p.pending_in_after, p.pending_out_after
        FROM ledger_balance b
        JOIN ledger_account a ON a.id = b.account_id
        JOIN LATERAL (
            SELECT lp.posted_after, lp.pending_in_after, lp.pending_out_after FROM ledger_posting lp
            WHERE lp.account_id = b.account_id AND lp.asset = b.asset AND lp.position <= %s
            ORDER BY lp.position DESC, lp.line_no DESC LIMIT 1
        ) p ON true
        WHERE a.path LIKE %s
    """
    params: list = [position, _like_prefix(prefix)]
    if asset is not None:
        sql += " AND b.asset = %s"
        params.append(asset)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(row[0], row[1]): BalanceFigures(int(row[2]), int(row[3]), int(row[4])) for row in cursor.fetchall()}
