"""The public transparency pages: /transparency/ (every product) and /transparency/<SYMBOL>/.

Server-rendered from the stored attestations only (what is shown is what was signed): the latest
attestation, each product's coverage and custodians, a chart of coverage and supply over the recent
attestations drawn here as SVG (no script, nothing inline: the page keeps the strict CSP), and the
commands that check it all without trusting this server. Laid out for a phone first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from django.http import Http404
from django.shortcuts import render
from rest_framework.exceptions import Throttled

from compliance.rate_limits import take_public
from custody.selectors import attestation_history

WIDTH, HEIGHT, PAD = 600, 200, 30


@dataclass(frozen=True)
class Chart:
    coverage_points: str  # SVG polyline points
    supply_points: str
    coverage_max: str
    supply_max: str
    first: str
    last: str
    samples: int


def _tokens(product: dict) -> Fraction:
    return sum((Fraction(int(c["tokens_outstanding_base_units"]) + int(c["tokens_minting_base_units"]),
                         10 ** c["decimals"]) for c in product["chains"]), Fraction(0))


def _points(values: list[Fraction], top: Fraction) -> str:
    """Pixel coordinates (integers): x evenly spaced, y scaled to `top` (drawing only, not figures)."""
    if not values:
        return ""
    step = Fraction(WIDTH - 2 * PAD, max(len(values) - 1, 1))
    scale = Fraction(HEIGHT - 2 * PAD) / (top or 1)
    return " ".join(f"{round(PAD + step * i)},{round(HEIGHT - PAD - value * scale)}" for i, value in enumerate(values))


def _chart(documents: list[dict], symbol: str | None) -> Chart:
    coverage, supply = [], []
    for document in documents:
        products = document["payload"]["products"]
        if symbol is not None:
            products = [p for p in products if p["symbol"] == symbol]
            if not products:
                continue
        covered = [Fraction(Decimal(p["coverage"])) for p in products if p["coverage"] is not None]
        coverage.append(min(covered) if covered else Fraction(0))
        supply.append(sum((_tokens(p) for p in products), Fraction(0)))
    coverage_top = max(coverage + [Fraction(1)]) * Fraction(11, 10)
    supply_top = max(supply + [Fraction(1)]) * Fraction(11, 10)
    return Chart(coverage_points=_points(coverage, coverage_top), supply_points=_points(supply, supply_top),
                 coverage_max=f"{Decimal(coverage_top.numerator) / Decimal(coverage_top.denominator):.3f}",
                 supply_max=f"{Decimal(supply_top.numerator) / Decimal(supply_top.denominator):.3f}",
                 first=documents[0]["issued_at"] if documents else "", last=documents[-1]["issued_at"] if documents else "",
                 samples=len(coverage))


def _shares(nano: str) -> str:
    whole, frac = divmod(int(nano), 10**9)
    return f"{whole:,}" + (f".{frac:09d}".rstrip("0") if frac else "")


def _product_view(product: dict) -> dict:
    return {**product, "shares_held": _shares(product["shares_held_nano"]),
            "shares_in_transit": _shares(product["shares_in_transit_nano"]),
            "tokens": str(Decimal(_tokens(product).numerator) / Decimal(_tokens(product).denominator)),
            "custodian_rows": [{**c, "shares": _shares(c["shares_held_nano"])} for c in product["custodians"]],
            "covered": product["coverage"] is None or Decimal(product["coverage"]) >= 1}


def transparency(request, symbol: str | None = None):
    try:
        take_public(request.META.get("REMOTE_ADDR", ""))
    except Throttled as exc:
        response = render(request, "custody/transparency_busy.html", status=429)
        response["Retry-After"] = str(int(exc.wait or 1))
        return response
    rows = attestation_history(limit=200)
    documents = [json.loads(row.document) for row in rows]
    latest = documents[-1] if documents else None
    products = latest["payload"]["products"] if latest else []
    if symbol is not None:
        products = [p for p in products if p["symbol"] == symbol]
        if not products:
            raise Http404
    base = request.build_absolute_uri("/").rstrip("/")
    return render(request, "custody/transparency.html", {
        "symbol": symbol, "latest": latest, "latest_id": rows[-1].attestation_id if rows else None,
        "products": [_product_view(p) for p in products], "chart": _chart(documents, symbol),
        "width": WIDTH, "height": HEIGHT, "pad": PAD, "base": base,
    })
