"""The lifecycle declaration is the single source of truth, and the README draws exactly it."""

from pathlib import Path

import pytest

from mint_redeem.lifecycle import (
    MintLifecycle,
    RedemptionLifecycle,
    TransitionRefused,
    allowed_events,
    lifecycle_mermaid,
    next_state,
)

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("machine", [MintLifecycle, RedemptionLifecycle])
def test_the_readme_diagram_is_generated_from_the_declaration(machine):
    assert lifecycle_mermaid(machine) in README.read_text()


def test_cash_and_in_kind_paths_are_guarded():
    assert next_state(MintLifecycle, "accepted", "fund", in_kind=False) == "funded"
    assert next_state(MintLifecycle, "accepted", "receive_shares", in_kind=True) == "shares_received"
    with pytest.raises(TransitionRefused):
        next_state(MintLifecycle, "accepted", "fund", in_kind=True)
    with pytest.raises(TransitionRefused):
        next_state(MintLifecycle, "accepted", "receive_shares", in_kind=False)
    assert "place_order" in allowed_events(RedemptionLifecycle, "burned", in_kind=False)
    assert "deliver_shares" in allowed_events(RedemptionLifecycle, "burned", in_kind=True)
    assert "place_order" not in allowed_events(RedemptionLifecycle, "burned", in_kind=True)


@pytest.mark.parametrize("state", ["minted", "cancelled", "failed", "rejected"])
def test_final_states_allow_nothing(state):
    assert allowed_events(MintLifecycle, state, in_kind=False) == []
