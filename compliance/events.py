"""Ledger event types of compliance decisions. Every one names its actor (ledger metadata) and, where a
person decided, the reason they gave."""

from __future__ import annotations

from ledger.events import EventData, event_type, upcaster


@event_type("compliance.participant_created", version=1)
class ParticipantCreated(EventData):
    participant_id: int
    legal_name: str
    lei: str
    jurisdiction: str


@event_type("compliance.participant_updated", version=1)
class ParticipantUpdated(EventData):
    participant_id: int
    changes: dict[str, str | None]
    reason: str


@event_type("compliance.kyc_status_changed", version=1)
class KycStatusChanged(EventData):
    participant_id: int
    from_status: str
    to_status: str
    expires_on: str | None
    review_on: str | None
    reason: str


@event_type("compliance.aml_risk_changed", version=1)
class AmlRiskChanged(EventData):
    participant_id: int
    from_risk: str
    to_risk: str
    reason: str


@event_type("compliance.limits_changed", version=1)
class LimitsChanged(EventData):
    participant_id: int
    min_request_cents: int
    max_request_cents: int
    daily_limit_cents: int
    reason: str


@event_type("compliance.sanctions_hold_changed", version=1)
class SanctionsHoldChanged(EventData):
    participant_id: int
    wallet_id: int | None
    hold: bool
    case_id: int | None
    reason: str


@event_type("compliance.wallet_registered", version=1)
class WalletRegistered(EventData):
    wallet_id: int
    participant_id: int
    chain: str
    address: str


@event_type("compliance.wallet_verified", version=1)
class WalletVerified(EventData):
    wallet_id: int
    participant_id: int
    challenge_nonce: str


@event_type("compliance.wallet_frozen", version=1)
class WalletFrozen(EventData):
    wallet_id: int
    participant_id: int
    reason: str


@event_type("compliance.wallet_unfrozen", version=1)
class WalletUnfrozen(EventData):
    wallet_id: int
    participant_id: int
    reason: str


@event_type("compliance.sanctions_list_imported", version=1)
class SanctionsListImportedV1(EventData):
    list_id: int
    source: str
    sha256: str
    publish_date: str | None
    entry_count: int
    address_count: int


@event_type("compliance.sanctions_list_imported", version=2)
class SanctionsListImported(EventData):
    """The list became current. `imported_by` is who imported it (the event's actor is whoever made it
    current: the importer, or the second officer who approved a much smaller list)."""

    list_id: int
    source: str
    sha256: str
    publish_date: str | None
    record_count: int | None
    entry_count: int
    address_count: int
    imported_by: int | None
    previous_entry_count: int | None
    shrink_approved_by: int | None
    shrink_approval_reason: str | None


@upcaster("compliance.sanctions_list_imported", from_version=1)
def _sanctions_list_imported_v2(data: dict) -> dict:
    # v1 did not name the importer in its data (the event's actor did) nor the publisher's count.
    return {**data, "record_count": None, "imported_by": None, "previous_entry_count": None,
            "shrink_approved_by": None, "shrink_approval_reason": None}


@event_type("compliance.sanctions_list_held", version=1)
class SanctionsListHeld(EventData):
    """Imported but not made current: it has fewer than `min_percent` % of the current list's entries,
    so a second compliance officer must approve it first."""

    list_id: int
    source: str
    sha256: str
    publish_date: str | None
    record_count: int
    entry_count: int
    imported_by: int
    current_list_id: int
    current_entry_count: int
    min_percent: int


@event_type("compliance.screening_hit", version=1)
class ScreeningHit(EventData):
    case_id: int
    screening_id: int
    participant_id: int
    wallet_id: int | None
    subject_type: str
    screened_value: str
    best_score: str
    matched_uids: list[int]


@event_type("compliance.case_decided", version=1)
class CaseDecided(EventData):
    case_id: int
    participant_id: int
    wallet_id: int | None
    decision: str
    reason: str


@event_type("compliance.api_key_created", version=1)
class ApiKeyCreated(EventData):
    api_key_id: int
    key_id: str
    user_id: int
    participant_id: int | None
    scope: str
    signature_alg: str


@event_type("compliance.api_key_revoked", version=1)
class ApiKeyRevoked(EventData):
    api_key_id: int
    key_id: str
    reason: str


@event_type("reference.change_proposed", version=1)
class ReferenceChangeProposed(EventData):
    change_id: int
    model: str
    object_id: int
    changes: dict[str, str | None]
    before: dict[str, str | None]
    reason: str


@event_type("reference.changed", version=1)
class ReferenceChanged(EventData):
    change_id: int
    model: str
    object_id: int
    changes: dict[str, str | None]
    before: dict[str, str | None]
    reason: str
    proposed_by: int
    approved_by: int


@event_type("reference.change_rejected", version=1)
class ReferenceChangeRejected(EventData):
    change_id: int
    model: str
    object_id: int
    status: str
    reason: str
