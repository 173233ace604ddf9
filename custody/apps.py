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
