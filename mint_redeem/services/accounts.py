"""The ledger accounts mint_redeem posts to, and the cash movements between them.

Signs: a positive amount debits an account. Assets (the bank) run positive; what the issuer owes runs
negative (a participant's cash account below zero is cash held for them; above zero, cash they owe);
revenue runs negative as it is earned. Custody owns the share accounts (`custody.services`).

  issuer_cash/bank            cash at the issuer's bank (USD cents)
  issuer_revenue/fees         the issuer's fee on cash mints
  participant/<id>/cash       cash the issuer holds for (negative) or is owed by (positive) a participant
  participant/<id>/shares     shares a participant delivers or receives in kind (external)
  tokens/<chain>/<SYMBOL>     tokens outstanding (positive); issuance/<chain>/<SYMBOL> its counterpart
"""

from __future__ import annotations

from ledger.postings import Line

BANK = "issuer_cash/bank"
FEE_REVENUE = "issuer_revenue/fees"
USD = "USD"


def participant_cash(participant_id: int) -> str:
    return f"participant/{participant_id}/cash"


def participant_shares(participant_id: int) -> str:
    return f"participant/{participant_id}/shares"


def issuance_account(chain: str, symbol: str) -> str:
    return f"issuance/{chain}/{symbol}"


def cash_received(participant_id: int, cents: int) -> list[Line]:
    """Cash reached the bank for the participant: the issuer holds it for them."""
    return _move(BANK, participant_cash(participant_id), cents)


def cash_paid_out(participant_id: int, cents: int) -> list[Line]:
    """Cash held for the participant left the bank (a refund, a payout, or the shares they bought)."""
    return _move(participant_cash(participant_id), BANK, cents)


def fee_charged(participant_id: int, cents: int) -> list[Line]:
    return _move(participant_cash(participant_id), FEE_REVENUE, cents)


def _move(debit: str, credit: str, cents: int) -> list[Line]:
    if cents <= 0:
        return []
    return [Line(debit, USD, cents), Line(credit, USD, -cents)]
