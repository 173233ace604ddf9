"""What the operations console's home page shows, read in a fixed number of queries whatever the data.

Each figure comes from the selector its app already answers with (the lifecycle's MOVERS, stuck_requests,
custody's reserves, open breaks and compliance cases), so the dashboard cannot disagree with the pages
it links to. mint_redeem is the top of the import order, so it may read every app below it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from compliance.models import CaseStatus, ComplianceCase
from custody import selectors as custody_selectors
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, final_states, mover
from mint_redeem.models import ChainOperation, DepositCase, MintRequest, Redemption
from mint_redeem.selectors import StuckRequest, stuck_requests, with_decimals

# A chain operation not confirmed this long after it was written is shown as stuck: the executor
# confirms a healthy one within seconds to minutes (confirmation depth), so this is a real stall.
CHAIN_OPERATION_STUCK_AFTER = timedelta(minutes=15)
# A task-moved request unchanged this long is stuck (manage.py requests_stuck's default).
REQUEST_STUCK_AFTER = timedelta(days=7)

# What an operator does to move a request on from a state the lifecycle leaves to operations.
OPERATOR_ACTIONS = {
    ("mint", "accepted", False): "record cash received",
    ("mint", "accepted", True): "record shares received",
    ("mint", "topup_due"): "record the top-up",
    ("redemption", "requested"): "record tokens received",
    ("redemption", "sale_failed"): "retry the sale or fail it",
    ("redemption", "settled"): "record the payout",
    ("redemption", "burned", True): "record shares delivered",
}
MOVER_LABELS = {"operations": "operator", "task": "automatic", "chain": "chain", "transient": "automatic"}


@dataclass(frozen=True)
class WaitingRow:
    kind: str  # mint | redemption
    state: str
    in_kind: bool
    count: int
    awaiting_approval: int
    mover: str  # operator | automatic | chain
    action: str  # what the operator does, "" when nobody needs to

    @property
    def needs_operator(self) -> bool:
        return self.mover == "operator" or self.awaiting_approval > 0


@dataclass(frozen=True)
class Dashboard:
    waiting: list[WaitingRow]
    stuck_requests: list[StuckRequest]
    stuck_chain_operations: list[ChainOperation]
    open_breaks: list
    open_compliance_cases: list[ComplianceCase]
    open_deposit_cases: int
    products: list[custody_selectors.ProductWithReserves]
    attestation: AttestationPanel | None

    @property
    def approvals_waiting(self) -> int:
        return sum(row.awaiting_approval for row in self.waiting)

    @property
    def topups_waiting(self) -> int:
        return sum(row.count for row in self.waiting if row.kind == "mint" and row.state == "topup_due")

    @property
    def operator_actions_waiting(self) -> int:
        return sum(row.count for row in self.waiting if row.mover == "operator")


def _waiting(kind: str, model, machine, in_kind_value: str, mode_field: str) -> list[WaitingRow]:
    rows = (model.objects.exclude(state__in=final_states(machine))
            .values("state", mode_field)
            .annotate(n=Count("id"), approvals=Count("id", filter=Q(needs_approval=True, approved_by__isnull=True)))
            .order_by("state", mode_field))
    out = []
    for row in rows:
        in_kind = row[mode_field] == in_kind_value
        who = MOVER_LABELS.get(mover(kind, row["state"], in_kind=in_kind) or "", "unknown")
        action = ""
        if who == "operator":
            action = OPERATOR_ACTIONS.get((kind, row["state"], in_kind)) or OPERATOR_ACTIONS.get((kind, row["state"]), "")
        out.append(WaitingRow(kind=kind, state=row["state"], in_kind=in_kind, count=row["n"],
                              awaiting_approval=row["approvals"], mover=who, action=action))
    return out


def stuck_chain_operations(*, older_than: timedelta = CHAIN_OPERATION_STUCK_AFTER) -> list[ChainOperation]:
    """Failed chain operations, and those not confirmed `older_than` after they were written."""
    cutoff = timezone.now() - older_than
    return list(with_decimals(ChainOperation.objects.filter(
        Q(status=ChainOperation.Status.FAILED)
        | (~Q(status=ChainOperation.Status.CONFIRMED) & Q(created_at__lt=cutoff)))
        .select_related("product").order_by("created_at")))


@dataclass(frozen=True)
class AttestationPanel:
    """What the dashboard shows of the newest signed reserve attestation: its own figures, as signed."""

    attestation_id: str
    issued_at: object  # datetime
    head_position: int
    head_hash_hex: str
    minimum_coverage: str | None  # the lowest product coverage, as signed (None: nothing outstanding)
    undercovered: list[str]  # symbols whose coverage is below 1
    document_url: str  # the signed document, byte for byte
    transparency_url: str  # the public page showing it
    admin_url: str  # the attestation in the console

    @property
    def fully_covered(self) -> bool:
        return not self.undercovered


def latest_attestation() -> AttestationPanel | None:
    """The newest attestation's panel (custody.selectors.attestation_latest), or None when none was
    issued (then the panel is not shown). One query: the figures are read from the stored document."""
    row = custody_selectors.attestation_latest()
    if row is None:
        return None
    payload = json.loads(row.document)["payload"]
    return AttestationPanel(
        attestation_id=row.attestation_id, issued_at=row.issued_at, head_position=row.head_position,
        head_hash_hex=payload["ledger_head"]["hash"], minimum_coverage=payload["totals"]["minimum_coverage"],
        undercovered=list(payload["totals"]["undercovered"]),
        document_url=reverse("v1:attestation-detail", args=[row.attestation_id]),
        transparency_url=reverse("transparency"),
        admin_url=reverse("admin:custody_attestation_change", args=[row.pk]))


def dashboard() -> Dashboard:
    return Dashboard(
        waiting=[*_waiting("mint", MintRequest, MintLifecycle, MintRequest.Funding.IN_KIND, "funding"),
                 *_waiting("redemption", Redemption, RedemptionLifecycle, Redemption.Payout.IN_KIND, "payout")],
        stuck_requests=stuck_requests(older_than=REQUEST_STUCK_AFTER),
        stuck_chain_operations=stuck_chain_operations(),
        open_breaks=list(custody_selectors.open_breaks()),
        open_compliance_cases=list(ComplianceCase.objects.filter(status=CaseStatus.OPEN)
                                   .select_related("participant", "wallet").order_by("opened_at")),
        open_deposit_cases=DepositCase.objects.filter(status=DepositCase.Status.OPEN).count(),
        products=custody_selectors.products_with_reserves(),
        attestation=latest_attestation(),
    )
