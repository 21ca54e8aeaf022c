"""Template filters that format the statistics for people: percentages, signed lifts, p-values."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


def _number(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


@register.filter
def percent(value: Any, digits: int = 2) -> str:
    """0.01234 -> "1.23 %"; missing -> "–"."""
    number = _number(value)
    return "–" if number is None else f"{number * 100:.{int(digits)}f} %"


@register.filter
def signed_percent(value: Any, digits: int = 1) -> str:
    """0.123 -> "+12.3 %" (a lift)."""
    number = _number(value)
    return "–" if number is None else f"{number * 100:+.{int(digits)}f} %"


@register.filter
def signed(value: Any, digits: int = 4) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:+.{int(digits)}f}"


@register.filter
def pvalue(value: Any) -> str:
    """p-values to three significant digits, tiny ones as "< 0.0001"."""
    number = _number(value)
    if number is None:
        return "–"
    return "< 0.0001" if number < 1e-4 else f"{number:.3g}"


@register.filter
def level(value: Any) -> str:
    """A significance level as set, however small: 0.05 -> "0.05", 2.5e-05 -> "2.5e-05" (a p-value
    format would print "< 0.0001" for a threshold, which reads as a result, not a level)."""
    number = _number(value)
    return "–" if number is None else f"{number:.3g}"


@register.filter
def sign_class(value: Any) -> str:
    """CSS class of a lift: "positive", "negative" or ""."""
    number = _number(value)
    return "" if not number else ("positive" if number > 0 else "negative")


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """mapping[key] in a template (audit entries' before/after values)."""
    return mapping.get(key) if isinstance(mapping, dict) else None
