"""Units every app shares. Quantities are exact integers: shares in nano-shares, cash in cents."""

NANO = 10**9  # nano-shares per share
