from django.apps import AppConfig


class CustodyConfig(AppConfig):
    name = "custody"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from custody import events  # noqa: F401 - registers the event types
        from ledger.accounts import register_account_policy

        # Shares at a custodian or in transit can never go below zero: a delivery or sale of shares
        # we do not hold is refused inside the transaction that tried it.
        register_account_policy("custody/", non_negative=True)
        register_account_policy("in_transit/", non_negative=True)
        _register_reference_data()


def _register_reference_data() -> None:
    """What operations may change by proposal and a second person's approval (identifiers never)."""
    from compliance.reference_changes import register
    from custody import services
    from custody.models import Broker, Custodian, CustodyAccount, Security, TokenProduct

    register(Security, fields=("isin", "cusip", "exchange_mic", "name"))
    register(TokenProduct, fields=("status", "multiplier", "break_tolerance_nano"), appliers={
        # A status or multiplier change is its own ledger event, made by custody's services.
        "status": lambda product, value, *, actor, reason: services.product_status_set(
            product=product, status=value, reason=reason, actor=actor),
        "multiplier": lambda product, value, *, actor, reason: services.product_multiplier_set(
            product=product, multiplier=value, reason=reason, actor=actor),
    })
    register(Broker, fields=("name", "settlement_days", "custodian", "api_base_url", "credentials_env_prefix",
                             "sim_fee_bps", "sim_min_fee_cents", "sim_latency_ms"))
    register(Custodian, fields=("name", "bic"))
    register(CustodyAccount, fields=("account_number", "name", "is_active"))
