"""Every way a mint or a redemption can change, one concern per module:

  quoting      pure: quantities, quotes, the cash split of a mint (cost + fee + refund)
  accounts     the ledger accounts and the cash movements between them
  transitions  the engine: lock a request, check its lifecycle, notify, append its events
  trading      the broker order, fill and settle steps mints and redemptions share
  chain        the chain-operation outbox: records from the executor, guarded confirmations
  mints        mint_*: create, fund, order, fill, settle, top up, mint on chain, cancel, fail
  redemptions  redemption_*: create, receive, burn, sell, settle, pay out or deliver, cancel, fail
  approvals    four eyes

Steps that talk to the outside (the broker, the chains) are idempotent and keyed by the request
(`mint-<id>`), so a task killed between two lines is simply run again.
"""

from mint_redeem.services.approvals import request_approve
from mint_redeem.services.chain import (
    chain_operation_record_broadcast,
    chain_operation_record_failed,
    chain_operation_record_signed,
    chain_operation_retry,
)
from mint_redeem.services.mints import (
    mint_advance,
    mint_cancel,
    mint_cash_record,
    mint_confirm_on_chain,
    mint_fail,
    mint_request_create,
    mint_shares_receive,
    mint_shortfall_cents,
    mint_start_minting,
    mint_topup_record,
    mints_confirm_on_chain,
)
from mint_redeem.services.quoting import RequestError, parse_quantity
from mint_redeem.services.redemptions import (
    redemption_address,
    redemption_advance,
    redemption_cancel,
    redemption_confirm_burn,
    redemption_fail,
    redemption_instructions,
    redemption_payout_record,
    redemption_request_create,
    redemption_sale_retry,
    redemption_shares_deliver,
    redemption_tokens_receive,
)

__all__ = [
    "RequestError", "chain_operation_record_broadcast", "chain_operation_record_failed",
    "chain_operation_record_signed", "chain_operation_retry", "mint_advance",
    "mint_cancel", "mint_cash_record", "mint_confirm_on_chain", "mints_confirm_on_chain", "mint_fail", "mint_request_create",
    "mint_shares_receive", "mint_shortfall_cents", "mint_start_minting", "mint_topup_record", "parse_quantity",
    "redemption_address", "redemption_advance", "redemption_cancel", "redemption_confirm_burn", "redemption_fail",
    "redemption_instructions",
    "redemption_payout_record", "redemption_request_create", "redemption_sale_retry", "redemption_shares_deliver",
    "redemption_tokens_receive", "request_approve",
]
