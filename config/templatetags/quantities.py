"""Template filters over config.quantities: `{% load quantities %}` then `{{ x.quantity_nano|shares }}`,
`{{ x.cost_cents|usd }}`, `{% tokens amount decimals symbol %}`. Each shows the readable figure with
the exact units beside it; the `*_plain` forms give the readable text alone."""

from django import template

from config import quantities

register = template.Library()


@register.filter
def shares(nano):
    return quantities.shares_html(nano)


@register.filter
def shares_plain(nano):
    return quantities.shares(nano)


@register.filter
def usd(cents):
    return quantities.usd_html(cents)


@register.filter
def usd_plain(cents):
    return quantities.usd(cents)


@register.simple_tag
def tokens(base_units, decimals, symbol):
    return quantities.tokens_html(base_units, decimals, symbol)
