from django.apps import AppConfig


class MintRedeemConfig(AppConfig):
    name = "mint_redeem"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ledger.accounts import register_account_policy
        from mint_redeem import events  # noqa: F401 - registers the event types

        # What the issuer holds for a participant is a liability (negative); it can never turn into
        # a claim on the participant by accident.
        register_account_policy("participant/", non_negative=False)
        register_account_policy("tokens/", non_negative=True)

        from compliance.reference_changes import register
        from mint_redeem.models import ProductTerms

        # Product terms change by proposal and a second person's approval (compliance.reference_changes).
        register(ProductTerms, fields=("broker", "custodian", "reference_price", "cash_buffer_bps", "fee_bps",
                                       "approval_threshold_cents", "market_hours_only", "redemption_addresses"))

        # A multiplier change (custody's, approved by four eyes) also writes its on-chain update to the outbox.
        from compliance.reference_changes import changeable
        from custody.models import TokenProduct
        from mint_redeem.services.corporate_actions import product_multiplier_change

        changeable(TokenProduct).appliers["multiplier"] = (
            lambda product, value, *, actor, reason: product_multiplier_change(
                product=product, multiplier=value, reason=reason, actor=actor))

        # The chain executor (chains) claims and records our outbox rows through these (chains.outcomes).
        from mint_redeem import chain_outcomes

        chain_outcomes.register()
