"""Demo data for `make run`, assembled from each app's own idempotent seed."""

from __future__ import annotations


def seed_demo() -> list[str]:
    """Seed every app in import order; return human-readable lines describing what exists."""
    lines: list[str] = []
    return lines
